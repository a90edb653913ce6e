// Package ingest serves POST /api/metrics: it enforces the body limits,
// Content-Type and Content-Encoding (gzip is decompressed), decodes and
// validates the metrics (pkg/metric), then makes one Redis call that checks
// the client's rate limit and appends the metrics to the stream. A 201
// means Redis acknowledged the write; an invalid request uses no quota
// because it never reaches Redis.
//
// A request with an Idempotency-Key (package idempotency) is checked in
// that same call: the client's record of the key answers for it (the
// original ids, Idempotent-Replayed: true, no quota used; or a 422 when
// the record is another body's), and a 201 records it. A failed write is
// one of two 503s: store-unavailable when it certainly did not run,
// write-outcome-unknown when it was sent and no answer came (a retry with
// the same key is then the safe one).
package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
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
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/internal/apikey"
	"github.com/resilientanalytics/ra/services/api/internal/fail"
	"github.com/resilientanalytics/ra/services/api/internal/idempotency"
	"github.com/resilientanalytics/ra/services/api/internal/ratelimit"
)

// Appender counts one request against client's quota and, when allowed,
// stores its metrics; *store.Store and *Coalescer implement it. The quota
// comes with each request: an API key may have its own.
type Appender interface {
	Append(ctx context.Context, client string, limit store.Limit, ms []metric.Metric, idem store.Idempotency) (store.AppendResult, error)
}

var (
	_ Appender = (*store.Store)(nil)
	_ Appender = (*Coalescer)(nil)
)

// Recorder counts what operators alert on, by API key name ("" for
// requests without a key).
type Recorder interface {
	RateLimited(key string)
	IngestWriteError(key string)
	Ingested(key string, metrics int)
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
	// IdempotencyTTL is how long an Idempotency-Key's record is kept
	// (IDEMPOTENCY_TTL; zero takes DefaultIdempotencyTTL).
	IdempotencyTTL time.Duration
}

// DefaultIdempotencyTTL is IDEMPOTENCY_TTL's default: a day of retries.
const DefaultIdempotencyTTL = 24 * time.Hour

// ReplayedHeader marks a 201 that an Idempotency-Key's record answered.
const ReplayedHeader = "Idempotent-Replayed"

// Handler is the POST /api/metrics handler.
type Handler struct {
	store   Appender
	policy  ratelimit.Policy  // the default; a key may have its own
	headers ratelimit.Headers // policy's
	limits  Limits
	decoder *metric.Decoder
	rec     Recorder
	log     *slog.Logger
	// bodies recycles request-body buffers: the decoder copies what it
	// keeps, so a body's bytes are dead once ServeHTTP returns.
	bodies sync.Pool
}

// NewHandler returns the ingest handler; the appender enforces the quota
// in Redis. policy is the default quota: a request authenticated by an API
// key with its own q/w gets that instead (ratelimit.Client).
func NewHandler(app Appender, policy ratelimit.Policy, limits Limits, rec Recorder, log *slog.Logger) (*Handler, error) {
	if limits.Now == nil {
		limits.Now = time.Now
	}
	if limits.IdempotencyTTL <= 0 {
		limits.IdempotencyTTL = DefaultIdempotencyTTL
	}
	dec, err := metric.NewDecoder(metric.Limits{MaxBatch: limits.MaxBatch, MaxAbsValue: limits.MaxAbsValue,
		MaxFuture: limits.MaxFuture, Now: limits.Now})
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	h := &Handler{store: app, policy: policy, headers: policy.Headers(), limits: limits, decoder: dec, rec: rec, log: log}
	h.bodies.New = func() any { return new(bytes.Buffer) }
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !isJSON(r.Header["Content-Type"]) {
		h.fail(w, r, fail.Errorf(fail.UnsupportedMediaType, "Content-Type must be application/json, got %q", r.Header.Get("Content-Type")))
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
	idemKey, hasKey, err := idempotency.Parse(r.Header[idempotency.Header])
	if err != nil {
		h.fail(w, r, &fail.Error{Code: fail.Invalid, Kind: "invalid-idempotency-key", Title: "Invalid Idempotency-Key header",
			Detail: err.Error() + "; nothing was stored", Fields: []metric.FieldError{{Field: idempotency.Header, Message: err.Error()}}})
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
	client, policy := ratelimit.Client(r, h.policy)
	key := apikey.Name(r.Context())
	var idem store.Idempotency
	if hasKey {
		// The body as decoded: the same JSON sent gzipped is the same request.
		idem = store.Idempotency{Key: idemKey, Fingerprint: sha256.Sum256(buf.Bytes()), TTL: h.limits.IdempotencyTTL}
	}
	res, err := h.store.Append(r.Context(), client, store.Limit{Max: policy.Max, Window: policy.Window}, ms, idem)
	if err != nil {
		if r.Context().Err() != nil {
			// The client went away: not a store failure.
			h.fail(w, r, fail.Wrap(fail.Canceled, err))
			return
		}
		h.rec.IngestWriteError(key)
		code := fail.StoreUnavailable
		if errors.Is(err, store.ErrOutcomeUnknown) {
			code = fail.OutcomeUnknown
		}
		h.fail(w, r, &fail.Error{Code: code, Err: fmt.Errorf("append %d metrics: %w", len(ms), err)})
		return
	}
	if res.TypeLimit != nil {
		h.typeLimit(w, r, ms, batch, res.TypeLimit)
		return
	}
	switch res.Idempotency {
	case store.IdemKeyReused:
		h.fail(w, r, &fail.Error{Code: fail.IdempotencyKeyReused})
		return
	case store.IdemReplayed:
		// No quota was used, so there is no RateLimit state to report.
		w.Header()[ReplayedHeader] = replayedTrue
	}
	if policy.Enabled() && res.Idempotency != store.IdemReplayed {
		d := policy.Decide(res.Count, res.PTTL)
		if policy == h.policy {
			h.headers.Set(w.Header(), d)
		} else {
			policy.Headers().Set(w.Header(), d)
		}
		if !res.Allowed {
			h.rec.RateLimited(key)
			who := "this client"
			if key != "" {
				who = "this API key"
			}
			h.fail(w, r, &fail.Error{Code: fail.RateLimited, Policies: []string{ratelimit.PolicyName},
				Detail: fmt.Sprintf("rate limit of %d requests per %s exceeded for %s; retry in %d s",
					policy.Max, policy.Window, who, d.ResetSeconds())})
			return
		}
	}
	if !res.Allowed || len(res.IDs) != len(ms) {
		h.fail(w, r, fail.Wrap(fail.Internal, fmt.Errorf("store answered allowed=%t with %d ids for %d metrics", res.Allowed, len(res.IDs), len(ms))))
		return
	}
	if res.Idempotency != store.IdemReplayed {
		h.rec.Ingested(key, len(ms))
	}
	hdr := w.Header()
	hdr["Content-Type"] = jsonContentType
	hdr["Location"] = []string{"/api/metrics/summary?type=" + ms[0].Type}
	w.WriteHeader(http.StatusCreated)
	if batch {
		_ = json.NewEncoder(w).Encode(batchCreated{Accepted: len(res.IDs), IDs: res.IDs})
		return
	}
	_ = json.NewEncoder(w).Encode(created{ID: res.IDs[0], Type: ms[0].Type})
}

// created is the 201 body for one metric.
type created struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// batchCreated is the 201 body for a batch.
type batchCreated struct {
	Accepted int      `json:"accepted"`
	IDs      []string `json:"ids"`
}

// jsonContentType and replayedTrue are shared by every 201: net/http only
// reads them.
var (
	jsonContentType = []string{"application/json"}
	replayedTrue    = []string{"true"}
)

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
	h.fail(w, r, &fail.Error{Code: fail.UnsupportedMediaType, Kind: "unsupported-content-encoding", Title: "Unsupported Content-Encoding",
		Detail: fmt.Sprintf("Content-Encoding %q is not supported: send the body as is (identity) or as one layer of gzip", enc)})
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
		h.fail(w, r, &fail.Error{Code: fail.Malformed, Detail: "the body is not valid gzip (Content-Encoding: gzip)", Err: err})
	case errors.As(srcErr, &mbe):
		h.tooLarge(w, r)
	case errors.Is(srcErr, os.ErrDeadlineExceeded) || errors.As(srcErr, &ne) && ne.Timeout():
		// The connection cannot be read any more: do not offer it for reuse.
		w.Header().Set("Connection", "close")
		h.fail(w, r, &fail.Error{Code: fail.RequestTimeout, Detail: "the request body did not arrive in time; nothing was stored", Err: srcErr})
	default:
		h.fail(w, r, &fail.Error{Code: fail.Malformed, Detail: "the request body could not be read completely; nothing was stored", Err: srcErr})
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

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	fail.Write(w, r, h.log, err)
}

func (h *Handler) tooLarge(w http.ResponseWriter, r *http.Request) {
	h.fail(w, r, fail.Errorf(fail.TooLarge, "request body exceeds INGEST_MAX_BODY_BYTES=%d bytes (counted after gzip decompression)", h.limits.MaxBodyBytes))
}

func (h *Handler) decodeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		ve *metric.ValidationError
		se *metric.SyntaxError
		be *metric.BatchTooLargeError
	)
	switch {
	case errors.As(err, &ve):
		h.fail(w, r, &fail.Error{Code: fail.Invalid, Title: "Invalid metric", Fields: ve.Errors,
			Detail: fmt.Sprintf("%d invalid field(s); nothing was stored", len(ve.Errors))})
	case errors.As(err, &be):
		h.fail(w, r, &fail.Error{Code: fail.TooLarge, Kind: "batch-too-large", Title: "Batch Too Large",
			Detail: fmt.Sprintf("batch of %d metrics exceeds INGEST_MAX_BATCH=%d", be.Items, be.Max)})
	case errors.Is(err, metric.ErrEmptyBatch):
		h.fail(w, r, &fail.Error{Code: fail.EmptyBatch, Detail: err.Error()})
	case errors.As(err, &se):
		h.fail(w, r, &fail.Error{Code: fail.Malformed, Detail: se.Msg})
	default:
		h.fail(w, r, &fail.Error{Code: fail.Malformed, Detail: "the body is not a metric or a batch of metrics", Err: err})
	}
}

// typeLimit answers 422 type-limit-reached for a request refused by
// MAX_TYPES, naming the type (and, in a batch, its first item) and the cap.
func (h *Handler) typeLimit(w http.ResponseWriter, r *http.Request, ms []metric.Metric, batch bool, tl *store.TypeLimit) {
	field := "type"
	if batch {
		for i, m := range ms {
			if m.Type == tl.Type {
				field = "[" + strconv.Itoa(i) + "].type"
				break
			}
		}
	}
	h.fail(w, r, &fail.Error{Code: fail.TypeLimitReached,
		Fields: []metric.FieldError{{Field: field, Message: fmt.Sprintf("would be a new metric type past MAX_TYPES=%d", tl.Max)}},
		Detail: fmt.Sprintf("metric type %q would be one past the limit of %d types (MAX_TYPES); nothing was stored", tl.Type, tl.Max)})
}
