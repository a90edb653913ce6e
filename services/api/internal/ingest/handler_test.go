package ingest_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/keys"
	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/services/api/internal/ingest"
	"github.com/resilientanalytics/ra/services/api/internal/ratelimit"
)

type counter struct{ limited, writeErrors, metrics int }

func (c *counter) RateLimited(string)       { c.limited++ }
func (c *counter) IngestWriteError(string)  { c.writeErrors++ }
func (c *counter) Ingested(_ string, n int) { c.metrics += n }

type failingStore struct{ err error }

func (f failingStore) Append(context.Context, string, ratelimit.Policy, []metric.Metric) (ingest.Result, error) {
	return ingest.Result{}, f.err
}

func TestStoreFailureIs503AndCounted(t *testing.T) {
	rec := &counter{}
	h := ingest.NewHandler(failingStore{err: ingest.ErrUnavailable}, ratelimit.Policy{Max: 5, Window: time.Minute},
		ingest.Limits{MaxBodyBytes: 1 << 20, MaxBatch: 10}, rec, slog.New(slog.DiscardHandler))
	req := httptest.NewRequest("POST", "/api/metrics", strings.NewReader(`{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"a"}`))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || rec.writeErrors != 1 {
		t.Fatalf("%d %v errors=%d", w.Code, w.Header(), rec.writeErrors)
	}
	if w.Header().Get("RateLimit") != "" {
		t.Error("rate-limit headers on a request the limiter never decided")
	}
}

func TestStoreAppendErrorWrapsUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	srv.RequireReal(t)
	rdb, _ := redisclient.New(redisclient.Config{URL: srv.URL(), DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	defer rdb.Close()
	store := ingest.NewStore(rdb, keys.New(""), 1)
	defer store.Close()
	srv.Kill(t)
	_, err := store.Append(context.Background(), "c", ratelimit.Policy{Max: 5, Window: time.Minute}, []metric.Metric{{Timestamp: time.Unix(1, 0), Value: 1, Type: "a"}})
	if !errors.Is(err, ingest.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

// BenchmarkIngest measures the whole handler (decode, limit + XADD script,
// response) against a real redis-server, with many clients in parallel.
func BenchmarkIngest(b *testing.B) {
	srv := redistest.Start(b)
	rdb, _ := redisclient.New(redisclient.Config{URL: srv.URL(), DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	defer rdb.Close()
	policy := ratelimit.Policy{Max: 1 << 30, Window: time.Minute}
	store := ingest.NewStore(rdb, keys.New(""), 1)
	defer store.Close()
	h := ingest.NewHandler(store, policy,
		ingest.Limits{MaxBodyBytes: 1 << 20, MaxBatch: 1000}, &counter{}, slog.New(slog.DiscardHandler))
	body := `{"timestamp":"2026-02-15T10:00:00Z","value":75.5,"type":"cpu_usage"}`
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
}
