package fail_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/internal/fail"
)

type body struct {
	Type, Title, Detail string
	Status              int
	RequestID           string `json:"request_id"`
	Errors              []metric.FieldError
}

func TestWriteMapsEveryErrorToOneProblem(t *testing.T) {
	secret := errors.New("dial tcp 10.1.2.3:6379: connection refused")
	tests := []struct {
		name     string
		err      error
		cancel   bool
		status   int
		kind     string
		retry    string
		logLevel string // "" = not logged at info or above
	}{
		{"invalid with fields", &fail.Error{Code: fail.Invalid, Detail: "query parameter type is required",
			Fields: []metric.FieldError{{Field: "type", Message: "is required"}}}, false, 400, "/validation-error", "", ""},
		{"not found", fail.Errorf(fail.NotFound, "no such endpoint: /x"), false, 404, "/not-found", "", ""},
		{"rate limited", &fail.Error{Code: fail.RateLimited, Policies: []string{"default"}}, false, 429, "#quota-exceeded", "", ""},
		{"type limit", &fail.Error{Code: fail.TypeLimitReached, Detail: `metric type "x" would be one past the limit of 3 types (MAX_TYPES)`}, false, 422, "/type-limit-reached", "", ""},
		{"store read failed", fmt.Errorf("%w: read summary: %w", store.ErrUnavailable, secret), false, 503, "/service-unavailable", "1", "WARN"},
		{"write not acknowledged", fail.Wrap(fail.StoreUnavailable, secret), false, 503, "/store-unavailable", "1", "WARN"},
		{"write outcome unknown", fmt.Errorf("append: %w: %w", store.ErrOutcomeUnknown, secret), false, 503, "/write-outcome-unknown", "1", "WARN"},
		{"key reused", &fail.Error{Code: fail.IdempotencyKeyReused}, false, 422, "/idempotency-key-reused", "", ""},
		{"corrupt hash", fmt.Errorf("decode: %w", store.ErrCorrupt), false, 500, "/summary-corrupt", "", "ERROR"},
		{"client went away", fmt.Errorf("%w: %w", store.ErrUnavailable, context.Canceled), true, 503, "/request-cancelled", "", ""},
		{"a bug", secret, false, 500, "/internal", "", "ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, nil))
			req := httptest.NewRequest("GET", "/api/metrics/summary?type=x", nil)
			if tt.cancel {
				ctx, cancel := context.WithCancel(req.Context())
				cancel()
				req = req.WithContext(ctx)
			}
			w := httptest.NewRecorder()
			w.Header().Set("X-Request-Id", "rid-1")
			fail.Write(w, req, log, tt.err)
			var b body
			if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
				t.Fatal(err)
			}
			if w.Code != tt.status || b.Status != tt.status || !strings.HasSuffix(b.Type, tt.kind) || b.Title == "" || b.Detail == "" {
				t.Fatalf("%d %+v, want %d %s with a title and a detail", w.Code, b, tt.status, tt.kind)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			if got := w.Header().Get("Retry-After"); got != tt.retry {
				t.Errorf("Retry-After %q, want %q", got, tt.retry)
			}
			if b.RequestID != "rid-1" {
				t.Errorf("request_id %q", b.RequestID)
			}
			if strings.Contains(w.Body.String(), "10.1.2.3") || strings.Contains(w.Body.String(), "connection refused") {
				t.Errorf("internal error text reached the client: %s", w.Body.String())
			}
			logged := logs.String()
			if tt.logLevel == "" {
				if logged != "" {
					t.Errorf("logged %s", logged)
				}
				return
			}
			if !strings.Contains(logged, `"level":"`+tt.logLevel+`"`) || !strings.Contains(logged, `"request_id":"rid-1"`) ||
				!strings.Contains(logged, "connection refused") && !strings.Contains(logged, "corrupt") {
				t.Errorf("log line %s: want level %s, the request id and the cause", logged, tt.logLevel)
			}
		})
	}
}
