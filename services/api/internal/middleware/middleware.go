// Package middleware is the api's request plumbing, each piece a
// func(http.Handler) http.Handler: request ids, the access log, panic
// recovery and closing the connection after a chunked request. Errors leave through pkg/problem like everywhere else.
package middleware

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/resilientanalytics/ra/services/api/internal/fail"
)

// RequestIDHeader carries the request id both ways. Header names are
// case-insensitive; this is the canonical form net/http stores, so lookups
// need no canonicalising copy.
const RequestIDHeader = "X-Request-Id"

type requestIDCtx struct{}

// RequestID echoes the client's X-Request-ID when it is sane (1..128
// printable ASCII characters), otherwise generates one, and sets it on the
// response and in the context.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var id string
		if v := r.Header[RequestIDHeader]; len(v) > 0 {
			id = v[0]
		}
		if !validID(id) {
			id = newID()
		}
		w.Header()[RequestIDHeader] = []string{id}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDCtx{}, id)))
	})
}

// GetRequestID returns the id stored by RequestID.
func GetRequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDCtx{}).(string)
	return id
}

func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// AccessLog writes one JSON line per request to out: time, level, msg
// "request", request id, method, path, status, bytes and duration, the
// shape log's JSON handler gives every other line, and "key", the API key
// name, when an inner handler authenticated one (SetKey). Lines are at INFO (WARN
// for 5xx) and are dropped when log is not enabled at that level
// (LOG_LEVEL). The line is built by hand rather than through slog's JSON
// handler, which costs measurably more CPU per ingest request (the A/B
// figure is in docs/benchmarks.md).
func AccessLog(log *slog.Logger, out io.Writer) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rw := NewRecorder(w)
			defer func() {
				status, n, key := rw.Status(), rw.Bytes(), rw.key
				rw.Release()
				level := slog.LevelInfo
				if status >= 500 {
					level = slog.LevelWarn
				}
				if !log.Enabled(r.Context(), level) {
					return
				}
				line := lines.Get().(*[]byte)
				b := appendAccessLine((*line)[:0], start, level, GetRequestID(r.Context()), r.Method, r.URL.Path, key, status, n, time.Since(start))
				_, _ = out.Write(b)
				*line = b
				lines.Put(line)
			}()
			next.ServeHTTP(rw, r)
		})
	}
}

var lines = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

var recorders = sync.Pool{New: func() any { return new(Recorder) }}

// Recorder wraps a ResponseWriter and remembers the final status and the
// body bytes a handler sent, for the access log and the request metrics.
// Recorders are pooled (the hot path allocates none): Release one once the
// handler has returned and its status was read; net/http already forbids
// using a writer after that. Unwrap lets http.ResponseController reach the
// connection (Flush, deadlines).
type Recorder struct {
	http.ResponseWriter
	status int
	bytes  int
	key    string // API key name, for the access log
}

// NewRecorder wraps w.
func NewRecorder(w http.ResponseWriter) *Recorder {
	r := recorders.Get().(*Recorder)
	r.ResponseWriter, r.status, r.bytes, r.key = w, 0, 0, ""
	return r
}

// SetKey records the API key name of the request that w answers, for the
// access log line: the authenticating middleware runs inside the route,
// where the access log cannot see its context, but it writes through the
// access log's Recorder. Every Recorder found by unwrapping w gets it, so
// the order of the outer middleware does not matter.
func SetKey(w http.ResponseWriter, name string) {
	for w != nil {
		if rec, ok := w.(*Recorder); ok {
			rec.key = name
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// Release returns r to the pool.
func (w *Recorder) Release() {
	w.ResponseWriter = nil
	recorders.Put(w)
}

// Status is the final status sent: 200 when the handler wrote nothing.
func (w *Recorder) Status() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Bytes is the number of body bytes written.
func (w *Recorder) Bytes() int { return w.bytes }

func (w *Recorder) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code // 1xx informational headers are not the final status
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *Recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// Flush implements http.Flusher for handlers that type-assert it.
func (w *Recorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap returns the wrapped writer for http.ResponseController.
func (w *Recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func appendAccessLine(b []byte, t time.Time, level slog.Level, id, method, path, key string, status, n int, d time.Duration) []byte {
	b = append(b, `{"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"`...)
	b = append(b, level.String()...)
	b = append(b, `","msg":"request","request_id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, path)
	if key != "" {
		b = append(b, `,"key":`...)
		b = appendJSONString(b, key)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', -1, 64)
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string the way encoding/json writes
// it: quotes, backslashes and control characters escaped, each byte of
// invalid UTF-8 replaced by U+FFFD. Paths are client input, so the line
// must stay valid JSON whatever they hold.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Recover turns a panic into a logged 500 problem; the client never sees
// the panic value.
func Recover(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				rec := recover()
				if rec == nil {
					return
				}
				if rec == http.ErrAbortHandler {
					panic(rec)
				}
				log.ErrorContext(r.Context(), "panic serving request",
					"request_id", GetRequestID(r.Context()), "panic", rec, "stack", string(debug.Stack()))
				fail.Write(w, r, nil, fail.Errorf(fail.Internal, "an unexpected error occurred; quote the request id when reporting it"))
			}()
			next.ServeHTTP(w, r)
		})
	}
}
