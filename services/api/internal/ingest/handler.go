// Package ingest serves POST /api/metrics: it enforces the body limits and
// Content-Type, decodes and validates the metrics (pkg/metric), then makes
// one Redis call that checks the client's rate limit and appends the metrics
// to the stream. A 201 means Redis acknowledged the write; an invalid
// request uses no quota because it never reaches Redis.
package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/problem"
	"github.com/resilientanalytics/ra/services/api/internal/apikey"
	"github.com/resilientanalytics/ra/services/api/internal/ratelimit"
)

// QuotaExceededType is the IETF RateLimit draft's problem type for a 429.
const QuotaExceededType = "https://iana.org/assignments/http-problem-types#quota-exceeded"

// Appender stores metrics after checking the client's quota under policy
// (*Store). The policy comes with each request: an API key may have its
// own quota.
type Appender interface {
	Append(ctx context.Context, client string, policy ratelimit.Policy, ms []metric.Metric) (Result, error)
}

var _ Appender = (*Store)(nil)

// Recorder counts what operators alert on, by API key name ("" for
// requests without a key).
type Recorder interface {
	RateLimited(key string)
	IngestWriteError(key string)
	Ingested(key string, metrics int)
}

// Limits bound one request.
type Limits struct {
	MaxBodyBytes int64
	MaxBatch     int
}

// Handler is the POST /api/metrics handler.
type Handler struct {
	store   Appender
	policy  ratelimit.Policy  // the default; a key may have its own
	headers ratelimit.Headers // policy's
	limits  Limits
	rec     Recorder
	log     *slog.Logger
	// bodies recycles request-body buffers: the decoder copies what it
	// keeps, so a body's bytes are dead once ServeHTTP returns.
	bodies sync.Pool
}

// NewHandler returns the ingest handler. policy is the default quota: a
// request authenticated by an API key with its own q/w gets that instead
// (ratelimit.Client).
func NewHandler(store Appender, policy ratelimit.Policy, limits Limits, rec Recorder, log *slog.Logger) *Handler {
	h := &Handler{store: store, policy: policy, headers: policy.Headers(), limits: limits, rec: rec, log: log}
	h.bodies.New = func() any { return new(bytes.Buffer) }
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !isJSON(r.Header["Content-Type"]) {
		problem.Write(w, r, problem.New(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported Media Type",
			fmt.Sprintf("Content-Type must be application/json, got %q", r.Header.Get("Content-Type"))))
		return
	}
	if r.ContentLength > h.limits.MaxBodyBytes {
		h.tooLarge(w, r)
		return
	}
	buf := h.bodies.Get().(*bytes.Buffer)
	defer h.putBody(buf)
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.limits.MaxBodyBytes))
	body := buf.Bytes()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.tooLarge(w, r)
			return
		}
		problem.Write(w, r, problem.New(http.StatusBadRequest, "malformed-body", "Malformed request body", "reading the body failed: "+err.Error()))
		return
	}
	ms, batch, err := metric.Decode(body, h.limits.MaxBatch)
	if err != nil {
		h.decodeError(w, r, err)
		return
	}
	client, policy := ratelimit.Client(r, h.policy)
	key := apikey.Name(r.Context())
	res, err := h.store.Append(r.Context(), client, policy, ms)
	if policy.Enabled() && (err == nil || errors.Is(err, ratelimit.ErrLimited)) {
		if policy == h.policy {
			h.headers.Set(w.Header(), res.Decision)
		} else {
			policy.Headers().Set(w.Header(), res.Decision)
		}
	}
	switch {
	case errors.Is(err, ratelimit.ErrLimited):
		h.rec.RateLimited(key)
		who := "this client"
		if key != "" {
			who = "this API key"
		}
		p := problem.New(http.StatusTooManyRequests, "", "Quota exceeded",
			fmt.Sprintf("rate limit of %d requests per %s exceeded for %s; retry in %d s",
				policy.Max, policy.Window, who, res.Decision.ResetSeconds()))
		p.Type = QuotaExceededType
		p.ViolatedPolicies = []string{ratelimit.PolicyName}
		problem.Write(w, r, p)
		return
	case err != nil:
		if r.Context().Err() != nil {
			// The client went away; nothing to answer and not a store failure.
			return
		}
		h.rec.IngestWriteError(key)
		h.log.ErrorContext(r.Context(), "ingest write failed", "err", err, "metrics", len(ms))
		w.Header().Set("Retry-After", "1")
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "store-unavailable", "Service Unavailable",
			"the metrics store (Redis) did not acknowledge the write; nothing was stored, retry later"))
		return
	}
	h.rec.Ingested(key, len(ms))
	// The body is built by hand: ids are "<ms>-<seq>" and types are
	// validated to [A-Za-z0-9_.:-], so neither needs JSON escaping, and
	// encoding/json costs more than the rest of the response.
	hdr := w.Header()
	hdr["Content-Type"] = jsonContentType
	hdr["Location"] = []string{"/api/metrics/summary?type=" + ms[0].Type}
	w.WriteHeader(http.StatusCreated)
	out := h.bodies.Get().(*bytes.Buffer)
	defer h.putBody(out)
	b := out.AvailableBuffer()
	if batch {
		b = append(b, `{"accepted":`...)
		b = strconv.AppendInt(b, int64(len(res.IDs)), 10)
		b = append(b, `,"ids":[`...)
		for i, id := range res.IDs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, id...)
			b = append(b, '"')
		}
		b = append(b, "]}\n"...)
	} else {
		b = append(b, `{"id":"`...)
		b = append(b, res.IDs[0]...)
		b = append(b, `","type":"`...)
		b = append(b, ms[0].Type...)
		b = append(b, "\"}\n"...)
	}
	_, _ = w.Write(b)
}

// jsonContentType is shared by every 201: net/http only reads it.
var jsonContentType = []string{"application/json"}

// isJSON reports whether a Content-Type header names application/json
// (parameters such as charset allowed). The exact value, which nearly every
// client sends, is recognised without parsing.
func isJSON(ct []string) bool {
	if len(ct) == 1 && ct[0] == "application/json" {
		return true
	}
	if len(ct) == 0 {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct[0])
	return err == nil && mt == "application/json"
}

func (h *Handler) putBody(b *bytes.Buffer) {
	if b.Cap() > 64<<10 {
		return // let batch-sized buffers go rather than pin them
	}
	b.Reset()
	h.bodies.Put(b)
}

func (h *Handler) tooLarge(w http.ResponseWriter, r *http.Request) {
	problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, "payload-too-large", "Payload Too Large",
		fmt.Sprintf("request body exceeds INGEST_MAX_BODY_BYTES=%d bytes", h.limits.MaxBodyBytes)))
}

func (h *Handler) decodeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		ve *metric.ValidationError
		se *metric.SyntaxError
		be *metric.BatchTooLargeError
	)
	switch {
	case errors.As(err, &ve):
		p := problem.New(http.StatusBadRequest, "validation-error", "Invalid metric",
			fmt.Sprintf("%d invalid field(s); nothing was stored", len(ve.Errors)))
		p.Errors = ve.Errors
		problem.Write(w, r, p)
	case errors.As(err, &be):
		problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, "batch-too-large", "Batch Too Large",
			fmt.Sprintf("batch of %d metrics exceeds INGEST_MAX_BATCH=%d", be.Items, be.Max)))
	case errors.Is(err, metric.ErrEmptyBatch):
		problem.Write(w, r, problem.New(http.StatusBadRequest, "empty-batch", "Empty batch", err.Error()))
	case errors.As(err, &se):
		problem.Write(w, r, problem.New(http.StatusBadRequest, "malformed-body", "Malformed request body", se.Msg))
	default:
		problem.Write(w, r, problem.New(http.StatusBadRequest, "malformed-body", "Malformed request body", err.Error()))
	}
}
