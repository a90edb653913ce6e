package middleware_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/services/api/internal/middleware"
)

func TestRequestID(t *testing.T) {
	tests := []struct {
		name, sent string
		echoed     bool
	}{
		{"echo client's", "abc-123", true},
		{"none sent", "", false},
		{"too long replaced", strings.Repeat("x", 129), false},
		{"control chars replaced", "bad\x01id", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen string
			h := middleware.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = middleware.GetRequestID(r.Context())
			}))
			req := httptest.NewRequest("GET", "/", nil)
			if tt.sent != "" {
				req.Header.Set("X-Request-ID", tt.sent)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := rec.Header().Get("X-Request-ID")
			if got == "" || got != seen {
				t.Fatalf("header %q, context %q", got, seen)
			}
			if tt.echoed != (got == tt.sent) {
				t.Fatalf("got %q for sent %q", got, tt.sent)
			}
		})
	}
}

func TestRecoverAnswersProblemAndLogs(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	h := middleware.RequestID(middleware.AccessLog(log, &logs)(middleware.Recover(log)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	}))))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("X-Request-ID", "req-7")
	h.ServeHTTP(rec, req)
	if rec.Code != 500 || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	if got := rec.Header().Get("X-Request-ID"); got != "req-7" {
		t.Errorf("X-Request-ID = %q, want the client's req-7 echoed", got)
	}
	// Decoded into a string field: a missing request_id is "" and fails
	// (a map's missing key is nil, which never equals "").
	var p struct {
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "boom") || p.RequestID != "req-7" {
		t.Fatalf("body leaks the panic or lacks the request id req-7: %s", rec.Body)
	}
	if !strings.Contains(logs.String(), `"panic":"boom"`) || !strings.Contains(logs.String(), `"status":500`) {
		t.Fatalf("logs: %s", logs.String())
	}
}

// serveLogged runs one request through AccessLog with the handler answering
// status and returns the line it wrote (empty if none).
func serveLogged(t *testing.T, level slog.Level, path string, status int) string {
	t.Helper()
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: level}))
	h := middleware.RequestID(middleware.AccessLog(log, &out)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte("hello"))
	})))
	req := httptest.NewRequest("POST", "/", nil)
	req.URL.Path = path
	req.Header.Set("X-Request-ID", "req-1")
	h.ServeHTTP(httptest.NewRecorder(), req)
	return out.String()
}

func TestAccessLogLine(t *testing.T) {
	tests := []struct {
		name      string
		min       slog.Level
		status    int
		wantLevel string // "" = no line
	}{
		{"2xx at info", slog.LevelInfo, 201, "INFO"},
		{"4xx at info", slog.LevelInfo, 429, "INFO"},
		{"5xx at warn", slog.LevelInfo, 503, "WARN"},
		{"2xx dropped when LOG_LEVEL=warn", slog.LevelWarn, 201, ""},
		{"5xx kept when LOG_LEVEL=warn", slog.LevelWarn, 500, "WARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := serveLogged(t, tt.min, "/api/metrics", tt.status)
			if tt.wantLevel == "" {
				if line != "" {
					t.Fatalf("wrote %q, want nothing", line)
				}
				return
			}
			if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
				t.Fatalf("not one line: %q", line)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("not JSON: %v: %q", err, line)
			}
			ts, _ := got["time"].(string)
			if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
				t.Errorf("time %q: %v", ts, err)
			}
			want := map[string]any{"level": tt.wantLevel, "msg": "request", "request_id": "req-1", "method": "POST",
				"path": "/api/metrics", "status": float64(tt.status), "bytes": float64(5)}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			if d, ok := got["duration_ms"].(float64); !ok || d < 0 {
				t.Errorf("duration_ms = %v", got["duration_ms"])
			}
		})
	}
}

// FuzzAccessLogPath: whatever a client puts in the path (quotes, control
// characters, invalid UTF-8), the access line stays valid JSON and carries
// the path as encoding/json would.
func FuzzAccessLogPath(f *testing.F) {
	for _, s := range []string{"/api/metrics", `/a"b\c`, "/\x00\x1f\n\r\t", "/caf\xc3\xa9", "/bad\xff\xfe", "/\u2028<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		line := serveLogged(t, slog.LevelInfo, path, 200)
		var got struct{ Path string }
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line is not JSON for path %q: %v: %q", path, err, line)
		}
		ref, _ := json.Marshal(path)
		var want string
		_ = json.Unmarshal(ref, &want)
		if got.Path != want {
			t.Fatalf("path %q logged as %q, want %q", path, got.Path, want)
		}
	})
}

// An inner handler's SetKey reaches the access line as "key", through any
// wrapper that unwraps to the Recorder; without it the line has no key.
func TestAccessLogKey(t *testing.T) {
	tests := []struct {
		name, key string
		wrap      bool // an extra ResponseWriter wrapper between them
	}{
		{"no key", "", false},
		{"key", "ci-bot", false},
		{"key through a wrapper", "ci.bot_2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			log := slog.New(slog.NewJSONHandler(io.Discard, nil))
			inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.key != "" {
					middleware.SetKey(w, tt.key)
				}
				w.WriteHeader(201)
			})
			var h http.Handler = inner
			if tt.wrap {
				h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { inner.ServeHTTP(unwrapper{w}, r) })
			}
			middleware.AccessLog(log, &out)(h).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/api/metrics", nil))
			var got map[string]any
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("not JSON: %v: %q", err, out.String())
			}
			k, has := got["key"]
			if tt.key == "" && has || tt.key != "" && k != tt.key {
				t.Fatalf("key = %v (present %v), want %q: %s", k, has, tt.key, out.String())
			}
		})
	}
	// Without a Recorder in the chain SetKey does nothing (and does not panic).
	middleware.SetKey(httptest.NewRecorder(), "x")
}

type unwrapper struct{ http.ResponseWriter }

func (u unwrapper) Unwrap() http.ResponseWriter { return u.ResponseWriter }
