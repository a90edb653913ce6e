package middleware_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
	h := middleware.RequestID(middleware.AccessLog(log)(middleware.Recover(log)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	}))))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != 500 || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	var p map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	if strings.Contains(rec.Body.String(), "boom") || p["request_id"] == "" {
		t.Fatalf("body leaks the panic or lacks the request id: %s", rec.Body)
	}
	if !strings.Contains(logs.String(), `"panic":"boom"`) || !strings.Contains(logs.String(), `"status":500`) {
		t.Fatalf("logs: %s", logs.String())
	}
}
