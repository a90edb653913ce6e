package ingest_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/internal/ingest"
	"github.com/resilientanalytics/ra/services/api/internal/ratelimit"
)

type counter struct{ limited, writeErrors, metrics int }

func (c *counter) RateLimited(string)       { c.limited++ }
func (c *counter) IngestWriteError(string)  { c.writeErrors++ }
func (c *counter) Ingested(_ string, n int) { c.metrics += n }

// fakeStore answers every Append with res and err.
type fakeStore struct {
	res store.AppendResult
	err error
}

func (f fakeStore) Append(context.Context, string, store.Limit, []metric.Metric, store.Idempotency) (store.AppendResult, error) {
	return f.res, f.err
}

func serveOne(t *testing.T, app ingest.Appender, rec *counter) *httptest.ResponseRecorder {
	t.Helper()
	h := mustHandler(t, app, ratelimit.Policy{Max: 5, Window: time.Minute},
		ingest.Limits{MaxBodyBytes: 1 << 20, MaxBatch: 10}, rec, slog.New(slog.DiscardHandler))
	req := httptest.NewRequest("POST", "/api/metrics", strings.NewReader(oneMetric))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestStoreFailureIs503AndCounted(t *testing.T) {
	rec := &counter{}
	w := serveOne(t, fakeStore{err: store.ErrUnavailable}, rec)
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || rec.writeErrors != 1 {
		t.Fatalf("%d %v errors=%d", w.Code, w.Header(), rec.writeErrors)
	}
	if w.Header().Get("RateLimit") != "" {
		t.Error("rate-limit headers on a request the limiter never decided")
	}
	var p struct{ Type, Detail string }
	_ = json.Unmarshal(w.Body.Bytes(), &p)
	if !strings.HasSuffix(p.Type, "/store-unavailable") || strings.Contains(p.Detail, store.ErrUnavailable.Error()) {
		t.Errorf("problem %+v: want store-unavailable without the Go error", p)
	}
}

// The handler's own part of the limiter: the decision Redis made and the
// headers and problem it turns into.
func TestLimiterDecisionBecomesHeadersAndProblem(t *testing.T) {
	tests := []struct {
		name      string
		res       store.AppendResult
		status    int
		rateLimit string
		retry     string
	}{
		{"first of five", store.AppendResult{Allowed: true, Count: 1, PTTL: time.Minute, IDs: []string{"1-0"}}, 201, `"default";r=4;t=60`, ""},
		{"last of five", store.AppendResult{Allowed: true, Count: 5, PTTL: 1500 * time.Millisecond, IDs: []string{"1-0"}}, 201, `"default";r=0;t=2`, ""},
		{"sixth", store.AppendResult{Allowed: false, Count: 6, PTTL: 41200 * time.Millisecond}, 429, `"default";r=0;t=42`, "42"},
		{"window ends now", store.AppendResult{Allowed: false, Count: 9, PTTL: 0}, 429, `"default";r=0;t=1`, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &counter{}
			w := serveOne(t, fakeStore{res: tt.res}, rec)
			if w.Code != tt.status || w.Header().Get("RateLimit") != tt.rateLimit || w.Header().Get("Retry-After") != tt.retry {
				t.Fatalf("%d RateLimit=%q Retry-After=%q; want %d %q %q", w.Code, w.Header().Get("RateLimit"),
					w.Header().Get("Retry-After"), tt.status, tt.rateLimit, tt.retry)
			}
			if got := w.Header().Get("RateLimit-Policy"); got != `"default";q=5;w=60` {
				t.Errorf("RateLimit-Policy %q", got)
			}
			if (tt.status == 429) != (rec.limited == 1) {
				t.Errorf("rate-limited counter %d", rec.limited)
			}
		})
	}
}

// BenchmarkIngest measures the whole handler (decode, limit + XADD script,
// response) against a real redis-server, with many clients in parallel,
// with the coalescer and with one script call per request.
func BenchmarkIngest(b *testing.B) {
	srv := redistest.Start(b)
	st := serviceStore(b, srv.URL())
	policy := ratelimit.Policy{Max: 1 << 30, Window: time.Minute}
	body := `{"timestamp":"2026-02-15T10:00:00Z","value":75.5,"type":"cpu_usage"}`
	for _, coalesce := range []bool{true, false} {
		b.Run("coalesce="+map[bool]string{true: "on", false: "off"}[coalesce], func(b *testing.B) {
			var app ingest.Appender = st
			if coalesce {
				c := ingest.NewCoalescer(st, ingest.CoalescerOptions{})
				defer c.Close()
				app = c
			}
			h := mustHandler(b, app, policy,
				ingest.Limits{MaxBodyBytes: 1 << 20, MaxBatch: 1000}, &counter{}, slog.New(slog.DiscardHandler))
			b.ReportAllocs()
			b.SetParallelism(32) // many concurrent clients, as an HTTP server has
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("POST", "/api/metrics", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusCreated {
						_, _ = io.Copy(io.Discard, w.Body)
						b.Errorf("status %d", w.Code)
						return
					}
				}
			})
		})
	}
}
