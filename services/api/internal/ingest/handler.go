// Package ingest serves POST /api/metrics: it enforces the body limits,
// Content-Type and Content-Encoding (gzip is decompressed), decodes and
// validates the metrics (pkg/metric), then makes one Redis call that checks
// the client's rate limit and appends the metrics to the stream. A 201
// means Redis acknowledged the write; an invalid request uses no quota
// because it never reaches Redis.
package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/problem"
	"github.com/resilientanalytics/ra/services/api/internal/ratelimit"
)

// QuotaExceededType is the IETF RateLimit draft's problem type for a 429.
const QuotaExceededType = "https://iana.org/assignments/http-problem-types#quota-exceeded"

// Appender stores metrics after checking the client's quota (*Store).
type Appender interface {
	Append(ctx context.Context, client string, ms []metric.Metric) (Result, error)
}

var _ Appender = (*Store)(nil)

// Recorder counts what operators alert on.
type Recorder interface {
	RateLimited()
	IngestWriteError()
}

// Limits bound one request.
type Limits struct {
	// MaxBodyBytes bounds the body as sent and, for a gzip body, once
	// decompressed (INGEST_MAX_BODY_BYTES).
	MaxBodyBytes int64
	// MaxBatch, MaxAbsValue and MaxFuture are the decoder's bounds
	// (metric.Limits; zero takes its default).
	MaxBatch    int
	MaxAbsValue float64
	MaxFuture   time.Duration
	// Now is the clock MaxFuture is measured from (nil: time.Now).
	Now func() time.Time
}

// Handler is the POST /api/metrics handler.
type Handler struct {
	store   Appender
	policy  ratelimit.Policy
	headers ratelimit.Headers
	limits  Limits
	decoder *metric.Decoder
	rec     Recorder
	log     *slog.Logger
	// bodies recycles request-body buffers: the decoder copies what it
	// keeps, so a body's bytes are dead once ServeHTTP returns.
	bodies sync.Pool
}

// NewHandler returns the ingest handler. policy is only used for headers;
// the store enforces it.
func NewHandler(store Appender, policy ratelimit.Policy, limits Limits, rec Recorder, log *slog.Logger) (*Handler, error) {
	if limits.Now == nil {
		limits.Now = time.Now
	}
	dec, err := metric.NewDecoder(metric.Limits{MaxBatch: limits.MaxBatch, MaxAbsValue: limits.MaxAbsValue,
		MaxFuture: limits.MaxFuture, Now: limits.Now})
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	h := &Handler{store: store, policy: policy, headers: policy.Headers(), limits: limits, decoder: dec, rec: rec, log: log}
	h.bodies.New = func() any { return new(bytes.Buffer) }
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !isJSON(r.Header["Content-Type"]) {
		problem.Write(w, r, problem.New(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported Media Type",
			fmt.Sprintf("Content-Type must be application/json, got %q", r.Header.Get("Content-Type"))))
		return
	}
	gz, ok := h.contentEncoding(w, r)
	if !ok {
		return
	}
	if r.ContentLength > h.limits.MaxBodyBytes {
		h.tooLarge(w, r)
		return
	}
	buf := h.bodies.Get().(*bytes.Buffer)
	defer h.putBody(buf)
	if !h.readBody(w, r, buf, gz) {
		return
	}
	ms, batch, err := h.decoder.Decode(buf.Bytes())
	if err != nil {
		h.decodeError(w, r, err)
		return
	}
	res, err := h.store.Append(r.Context(), ratelimit.Key(r), ms)
	if h.policy.Enabled() && (err == nil || errors.Is(err, ratelimit.ErrLimited)) {
		h.headers.Set(w.Header(), res.Decision)
	}
	switch {
	case errors.Is(err, ratelimit.ErrLimited):
		h.rec.RateLimited()
		p := problem.New(http.StatusTooManyRequests, "", "Quota exceeded",
			fmt.Sprintf("rate limit of %d requests per %s exceeded for this client; retry in %d s",
				h.policy.Max, h.policy.Window, res.Decision.ResetSeconds()))
		p.Type = QuotaExceededType
		p.ViolatedPolicies = []string{ratelimit.PolicyName}
		problem.Write(w, r, p)
		return
	case err != nil:
		if r.Context().Err() != nil {
			// The client went away; nothing to answer and not a store failure.
			return
		}
		h.rec.IngestWriteError()
		h.log.ErrorContext(r.Context(), "ingest write failed", "err", err, "metrics", len(ms))
		w.Header().Set("Retry-After", "1")
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "store-unavailable", "Service Unavailable",
			"the metrics store (Redis) did not acknowledge the write; nothing was stored, retry later"))
		return
	}
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

// contentEncoding reports whether the body is gzip, or answers 415 for an
// encoding the api does not decode. identity is no encoding at all, and
// x-gzip is gzip (RFC 9110 section 8.4.1.3).
func (h *Handler) contentEncoding(w http.ResponseWriter, r *http.Request) (gzipped, ok bool) {
	values := r.Header["Content-Encoding"]
	if len(values) == 0 {
		return false, true
	}
	layers := 0
	for _, v := range values {
		for _, c := range strings.Split(v, ",") {
			switch c = strings.ToLower(strings.TrimSpace(c)); c {
			case "", "identity":
			case "gzip", "x-gzip":
				layers++
			default:
				h.unsupportedEncoding(w, r, c)
				return false, false
			}
		}
	}
	if layers > 1 {
		h.unsupportedEncoding(w, r, strings.Join(values, ", "))
		return false, false
	}
	return layers == 1, true
}

func (h *Handler) unsupportedEncoding(w http.ResponseWriter, r *http.Request, enc string) {
	// RFC 9110 section 12.5.3: a 415 for an encoding says which ones work.
	w.Header().Set("Accept-Encoding", "gzip")
	problem.Write(w, r, problem.New(http.StatusUnsupportedMediaType, "unsupported-content-encoding", "Unsupported Content-Encoding",
		fmt.Sprintf("Content-Encoding %q is not supported: send the body as is (identity) or as one layer of gzip", enc)))
}

// readBody reads the body into buf, decompressing a gzip one, or answers
// the problem: 413 past INGEST_MAX_BODY_BYTES (the bytes as sent and the
// bytes decompressed, so a gzip bomb stops at the limit), 408 when the body
// arrives slower than the server's ReadTimeout, 400 for a gzip stream that
// is not one and for any other read failure. No answer quotes the Go error:
// it can carry socket addresses.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer, gzipped bool) bool {
	limit := h.limits.MaxBodyBytes
	src := http.MaxBytesReader(w, r.Body, limit)
	var err, srcErr error
	if !gzipped {
		_, err = buf.ReadFrom(src)
		srcErr = err
	} else {
		raw := &sourceReader{r: src}
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(raw); err == nil {
			// One byte past the limit tells "exactly at it" from "over".
			_, err = buf.ReadFrom(io.LimitReader(zr, limit+1))
			if err == nil && int64(buf.Len()) > limit {
				h.tooLarge(w, r)
				return false
			}
		}
		srcErr = raw.err
	}
	if err == nil {
		return true
	}
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case srcErr == nil:
		// The bytes arrived whole; the decompressor refused them.
		problem.Write(w, r, problem.New(http.StatusBadRequest, "malformed-body", "Malformed request body",
			"the body is not valid gzip (Content-Encoding: gzip)"))
	case errors.As(srcErr, &mbe):
		h.tooLarge(w, r)
	case errors.Is(srcErr, os.ErrDeadlineExceeded) || errors.As(srcErr, &ne) && ne.Timeout():
		// The connection cannot be read any more: do not offer it for reuse.
		w.Header().Set("Connection", "close")
		problem.Write(w, r, problem.New(http.StatusRequestTimeout, "request-timeout", "Request Timeout",
			"the request body did not arrive in time; nothing was stored"))
	default:
		if r.Context().Err() == nil {
			h.log.WarnContext(r.Context(), "reading the request body failed", "err", srcErr)
		}
		problem.Write(w, r, problem.New(http.StatusBadRequest, "malformed-body", "Malformed request body",
			"the request body could not be read completely; nothing was stored"))
	}
	return false
}

// sourceReader keeps the error of the body as sent, so a failure of the
// connection is not mistaken for bad gzip (the decompressor turns a cut
// stream into io.ErrUnexpectedEOF).
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

func (h *Handler) tooLarge(w http.ResponseWriter, r *http.Request) {
	problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, "payload-too-large", "Payload Too Large",
		fmt.Sprintf("request body exceeds INGEST_MAX_BODY_BYTES=%d bytes (counted after gzip decompression)", h.limits.MaxBodyBytes)))
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
