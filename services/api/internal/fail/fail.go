// Package fail is the api's one mapping from errors to RFC 9457 problems,
// as wtf's Error does for its HTTP layer: handlers return or build an
// *Error carrying a Code, and Write turns any error into the problem, the
// status, Retry-After and one log line. What reaches the client is the
// code's title and a detail written for clients; the cause (Go errors,
// addresses, Redis replies) goes only to the log, with the request id.
package fail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/problem"
	"github.com/resilientanalytics/ra/pkg/store"
)

// Code is the kind of failure; it decides status, problem type and title.
type Code uint8

// The codes. Each maps to one row of the table in spec.
const (
	// Internal is a bug or an unexpected state: 500.
	Internal Code = iota
	// Invalid is a request whose fields or parameters are wrong: 400,
	// with Fields naming each.
	Invalid
	// Malformed is a body that is not the JSON expected: 400.
	Malformed
	// EmptyBatch is an empty JSON array: 400.
	EmptyBatch
	// Unauthorized is a missing, malformed or unknown API key: 401 (the
	// caller sets WWW-Authenticate).
	Unauthorized
	// NotFound is an unknown route or a type never aggregated: 404.
	NotFound
	// MethodNotAllowed is a known route with another method: 405.
	MethodNotAllowed
	// RequestTimeout is a body that did not arrive in time: 408.
	RequestTimeout
	// TooLarge is a body or batch over its limit: 413.
	TooLarge
	// UnsupportedMediaType is a Content-Type the route does not take: 415.
	UnsupportedMediaType
	// RateLimited is a client over its quota: 429.
	RateLimited
	// TypeLimitReached is a request that would add a metric type past
	// MAX_TYPES: 422, nothing stored.
	TypeLimitReached
	// Corrupt is a summary or bucket hash that cannot be read: 500 for
	// that type only; retrying does not help.
	Corrupt
	// Unavailable is a read that Redis did not answer: 503, retry.
	Unavailable
	// StoreUnavailable is a write that certainly did not run (no
	// connection to Redis, or Redis refused it before running it): 503,
	// retry.
	StoreUnavailable
	// Canceled is a request that ended (client gone, server timeout)
	// before it was answered: 503, logged at debug only.
	Canceled
	// OutcomeUnknown is a write that was sent and got no reply: it may
	// have been stored. 503; retry with the same Idempotency-Key.
	OutcomeUnknown
	// IdempotencyKeyReused is an Idempotency-Key whose record belongs to
	// another request body: 422, nothing was stored.
	IdempotencyKeyReused
)

// QuotaExceededType is the IETF RateLimit draft's problem type for a 429.
const QuotaExceededType = "https://iana.org/assignments/http-problem-types#quota-exceeded"

type spec struct {
	status int
	kind   string
	title  string
	detail string // the default detail
	retry  int    // Retry-After seconds, 0 = none
	level  slog.Level
	log    bool
}

var specs = [...]spec{
	Internal:             {http.StatusInternalServerError, "internal", "Internal Server Error", "an internal error occurred; quote the request id when reporting it", 0, slog.LevelError, true},
	Invalid:              {http.StatusBadRequest, "validation-error", "Invalid request", "the request has invalid fields", 0, slog.LevelDebug, false},
	Malformed:            {http.StatusBadRequest, "malformed-body", "Malformed request body", "the body is not the JSON this endpoint takes", 0, slog.LevelDebug, false},
	EmptyBatch:           {http.StatusBadRequest, "empty-batch", "Empty batch", "a batch must hold at least one metric", 0, slog.LevelDebug, false},
	Unauthorized:         {http.StatusUnauthorized, "unauthorized", "Unauthorized", "a valid API key is required", 0, slog.LevelDebug, false},
	NotFound:             {http.StatusNotFound, "not-found", "Not Found", "not found", 0, slog.LevelDebug, false},
	MethodNotAllowed:     {http.StatusMethodNotAllowed, "method-not-allowed", "Method Not Allowed", "the endpoint does not serve this method", 0, slog.LevelDebug, false},
	RequestTimeout:       {http.StatusRequestTimeout, "request-timeout", "Request Timeout", "the request did not arrive in time", 0, slog.LevelDebug, false},
	TooLarge:             {http.StatusRequestEntityTooLarge, "payload-too-large", "Payload Too Large", "the request is larger than this endpoint takes", 0, slog.LevelDebug, false},
	UnsupportedMediaType: {http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported Media Type", "the request's content type is not supported", 0, slog.LevelDebug, false},
	RateLimited:          {http.StatusTooManyRequests, "", "Quota exceeded", "rate limit exceeded for this client; retry after Retry-After seconds", 0, slog.LevelDebug, false},
	TypeLimitReached:     {http.StatusUnprocessableEntity, "type-limit-reached", "Type limit reached", "the request would add a metric type past MAX_TYPES; nothing was stored", 0, slog.LevelDebug, false},
	Corrupt:              {http.StatusInternalServerError, "summary-corrupt", "Stored data is corrupt", "the stored data of this metric type cannot be read; other types are unaffected", 0, slog.LevelError, true},
	Unavailable:          {http.StatusServiceUnavailable, "service-unavailable", "Service unavailable", "the metrics store is unavailable; retry shortly", 1, slog.LevelWarn, true},
	StoreUnavailable:     {http.StatusServiceUnavailable, "store-unavailable", "Service Unavailable", "the metrics store (Redis) could not take the write; nothing was stored, retry later", 1, slog.LevelWarn, true},
	Canceled:             {http.StatusServiceUnavailable, "request-cancelled", "Request cancelled", "the request ended before it was answered", 0, slog.LevelDebug, true},
	OutcomeUnknown: {http.StatusServiceUnavailable, "write-outcome-unknown", "Write outcome unknown",
		"the metrics store (Redis) did not answer after the write was sent: the metrics may have been stored. Retry with the same Idempotency-Key and the same body, which stores them at most once", 1, slog.LevelWarn, true},
	IdempotencyKeyReused: {http.StatusUnprocessableEntity, "idempotency-key-reused", "Idempotency-Key reused",
		"this Idempotency-Key was already used for a request with a different body; nothing was stored. Use a new key for a new request", 0, slog.LevelDebug, false},
}

// Error is a failure with a code. Detail, Fields and the other members are
// shown to the client; Err is the cause and is only logged.
type Error struct {
	Code Code
	// Kind overrides the code's problem type (the last segment of its
	// URI), for a more precise type within the same status.
	Kind string
	// Title overrides the code's title.
	Title string
	// Detail explains this occurrence to the client; the code's default
	// when empty.
	Detail string
	// Fields name the invalid fields or parameters (Invalid).
	Fields []metric.FieldError
	// Policies are the violated rate-limit policies (RateLimited).
	Policies []string
	// RetryAfter overrides the code's Retry-After in seconds (>= 1).
	RetryAfter int
	// Err is the cause, for the log.
	Err error
}

func (e *Error) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = specs[e.Code].title
	}
	if e.Err != nil {
		return msg + ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of code with a client-facing detail.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error of code whose cause is err (logged, not shown).
func Wrap(code Code, err error) *Error { return &Error{Code: code, Err: err} }

// Classify returns err as an *Error: err's own when it carries one, else
// by what it wraps: a request whose context ended is Canceled, a corrupt
// hash Corrupt, a Redis failure Unavailable, anything else Internal.
func Classify(r *http.Request, err error) *Error {
	var fe *Error
	switch {
	case errors.As(err, &fe):
		return fe
	case r != nil && r.Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return Wrap(Canceled, err)
	case errors.Is(err, store.ErrCorrupt):
		return Wrap(Corrupt, err)
	case errors.Is(err, store.ErrOutcomeUnknown):
		return Wrap(OutcomeUnknown, err)
	case errors.Is(err, store.ErrUnavailable):
		return Wrap(Unavailable, err)
	}
	return Wrap(Internal, err)
}

// Problem is the problem the client gets for e.
func (e *Error) Problem() problem.Problem {
	s := specs[e.Code]
	kind, title, detail := s.kind, s.title, s.detail
	if e.Kind != "" {
		kind = e.Kind
	}
	if e.Title != "" {
		title = e.Title
	}
	if e.Detail != "" {
		detail = e.Detail
	}
	p := problem.New(s.status, kind, title, detail)
	if e.Code == RateLimited {
		p.Type = QuotaExceededType
	}
	p.Errors = e.Fields
	p.ViolatedPolicies = e.Policies
	return p
}

// Status is the HTTP status of e.
func (e *Error) Status() int { return specs[e.Code].status }

// Write answers r with the problem err maps to, sets Retry-After where the
// code calls for one, and logs the cause on log (nil: not logged) with the
// request id, at the code's level.
func Write(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	e := Classify(r, err)
	s := specs[e.Code]
	if retry := max(e.RetryAfter, s.retry); retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retry))
	}
	if log != nil && s.log && log.Enabled(r.Context(), s.level) {
		log.LogAttrs(r.Context(), s.level, "request failed",
			slog.String("request_id", w.Header().Get("X-Request-Id")),
			slog.String("path", r.URL.Path),
			slog.Int("status", s.status),
			slog.String("problem", s.kind),
			slog.String("err", e.Error()))
	}
	problem.Write(w, r, e.Problem())
}
