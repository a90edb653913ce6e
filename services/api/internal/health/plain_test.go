package health_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/resilientanalytics/ra/services/api/internal/health"
)

func TestHealthSaysWhatFailedInPlainWords(t *testing.T) {
	dial := errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	tests := []struct {
		name   string
		err    error
		status int
		redis  string
	}{
		{"ok", nil, 200, "ok"},
		{"refused", dial, 503, "unreachable"},
		{"timeout", fmt.Errorf("ping: %w", context.DeadlineExceeded), 503, "unreachable: no answer in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			h, err := health.New(health.PingFunc(func(context.Context) error { return tt.err }), health.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			rec.Header().Set("X-Request-Id", "rid-9") // as the RequestID middleware does
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
			body := rec.Body.String()
			if rec.Code != tt.status || !strings.Contains(body, `"redis":"`+tt.redis+`"`) {
				t.Fatalf("%d %s, want %d with redis %q", rec.Code, body, tt.status, tt.redis)
			}
			for _, leak := range []string{"127.0.0.1", "6379", "dial tcp", "connection refused", "deadline"} {
				if strings.Contains(body, leak) {
					t.Errorf("body quotes %q: %s", leak, body)
				}
			}
			if tt.err != nil && (!strings.Contains(logs.String(), `"request_id":"rid-9"`) || !strings.Contains(logs.String(), tt.err.Error())) {
				t.Errorf("log %s: want the cause and the request id", logs.String())
			}
		})
	}
}
