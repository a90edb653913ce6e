package summary

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/telemetry"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// hgetallCounter is a go-redis hook counting HGETALL commands.
type hgetallCounter struct{ n atomic.Int64 }

func (h *hgetallCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *hgetallCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "hgetall" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h *hgetallCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if cmd.Name() == "hgetall" {
				h.n.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}

type env struct {
	h     *Handler
	srv   *redistest.Server
	rdb   redis.UniversalClient
	clk   *fakeClock
	reads *hgetallCounter
	m     *telemetry.Metrics
	keys  store.Keys
}

var testCache = config.Cache{TTL: time.Minute, StaleMax: 10 * time.Minute, MaxEntries: 100, ReadTimeout: 2 * time.Second}

func mustEnv(t *testing.T) *env {
	t.Helper()
	srv := redistest.Start(t)
	// The production client: no retries, 1s timeouts.
	rdb, err := redisclient.New(redisclient.Config{URL: srv.URL(), DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	if err != nil {
		t.Fatalf("redis client: %v", err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	reads := &hgetallCounter{}
	rdb.AddHook(reads)
	clk := &fakeClock{t: time.Date(2026, 2, 15, 10, 0, 0, 0, time.UTC)}
	m := telemetry.New()
	k := store.NewKeys("metrics")
	st, err := store.New(rdb, k.Family(), 1)
	if err != nil {
		t.Fatal(err)
	}
	h, err := newHandler(st, testCache, m, clk.Now, nil)
	if err != nil {
		t.Fatalf("newHandler: %v", err)
	}
	return &env{h: h, srv: srv, rdb: rdb, clk: clk, reads: reads, m: m, keys: k}
}

// put writes a summary hash as the aggregator would.
func (e *env) put(t *testing.T, typ string, count int64, sum, lo, hi string, first, last int64) {
	t.Helper()
	err := e.rdb.HSet(context.Background(), e.keys.Summary(0, typ),
		store.SummaryCount, count, store.SummarySum, sum, store.SummaryMin, lo, store.SummaryMax, hi,
		store.SummaryFirstTS, first, store.SummaryLastTS, last).Err()
	if err != nil {
		t.Fatalf("HSET: %v", err)
	}
}

func (e *env) get(query string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/metrics/summary"+query, nil))
	return rec
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return v
}

type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// 2026-02-15T10:00:00Z and 10:05:00.5Z in Unix microseconds.
const (
	t0 = int64(1771149600000000)
	t1 = int64(1771149900500000)
)

func TestBadType(t *testing.T) {
	e := mustEnv(t)
	tests := []struct {
		name, query string
	}{
		{"missing", ""},
		{"empty", "?type="},
		{"bad characters", "?type=cpu%20usage"},
		{"braces", "?type=%7Bx%7D"},
		{"too long", "?type=" + strings.Repeat("a", 101)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.get(tt.query)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q", ct)
			}
			p := decode[problemBody](t, rec)
			if p.Status != 400 || len(p.Errors) != 1 || p.Errors[0].Field != "type" || p.Errors[0].Message == "" {
				t.Fatalf("problem %+v, want one error naming type", p)
			}
		})
	}
	if n := e.reads.n.Load(); n != 0 {
		t.Fatalf("invalid requests read Redis %d times", n)
	}
}

func TestNotFoundIsNotCached(t *testing.T) {
	e := mustEnv(t)
	rec := e.get("?type=cpu_usage")
	if rec.Code != http.StatusNotFound {
		t.Fatalf("status %d, want 404: %s", rec.Code, rec.Body)
	}
	if p := decode[problemBody](t, rec); p.Status != 404 || !strings.HasSuffix(p.Type, "/not-found") {
		t.Fatalf("problem %+v", p)
	}
	if got := rec.Header().Get("X-Cache"); got != "MISS" {
		t.Fatalf("X-Cache %q, want MISS", got)
	}
	e.put(t, "cpu_usage", 1, "75", "75", "75", t0, t0)
	if rec := e.get("?type=cpu_usage"); rec.Code != http.StatusOK {
		t.Fatalf("after the first aggregation: status %d, want 200 (404 must not be cached)", rec.Code)
	}
	if n := e.reads.n.Load(); n != 2 {
		t.Fatalf("%d Redis reads, want 2", n)
	}
}

func TestBodyAndCacheHeaders(t *testing.T) {
	e := mustEnv(t)
	e.put(t, "cpu_usage", 4, "250", "10.5", "99.25", t0, t1)

	want := Response{
		Type: "cpu_usage", Count: 4, AverageValue: 62.5, MinValue: 10.5, MaxValue: 99.25, Sum: 250,
		FirstTimestamp: "2026-02-15T10:00:00Z", LastTimestamp: "2026-02-15T10:05:00.5Z",
	}
	steps := []struct {
		name         string
		advance      time.Duration
		xcache       string
		cacheStatus  string
		cacheControl string
	}{
		{"first request reads Redis", 0, "MISS", "api; fwd=miss; stored", "max-age=60"},
		{"second is a hit", 18 * time.Second, "HIT", "api; hit; ttl=42", "max-age=42"},
		{"fraction rounds down", 1500 * time.Millisecond, "HIT", "api; hit; ttl=40", "max-age=40"},
	}
	for _, s := range steps {
		e.clk.Advance(s.advance)
		rec := e.get("?type=cpu_usage")
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", s.name, rec.Code, rec.Body)
		}
		h := rec.Header()
		if h.Get("X-Cache") != s.xcache || h.Get("Cache-Status") != s.cacheStatus || h.Get("Cache-Control") != s.cacheControl ||
			h.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: headers %v, want X-Cache %q, Cache-Status %q, Cache-Control %q",
				s.name, h, s.xcache, s.cacheStatus, s.cacheControl)
		}
		if got := decode[Response](t, rec); got != want {
			t.Fatalf("%s: body %+v, want %+v", s.name, got, want)
		}
	}
	// The field names are the contract.
	var raw map[string]any
	_ = json.Unmarshal(e.get("?type=cpu_usage").Body.Bytes(), &raw)
	for _, f := range []string{"type", "count", "average_value", "min_value", "max_value", "sum", "first_timestamp", "last_timestamp"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("body lacks %q: %v", f, raw)
		}
	}
	if len(raw) != 8 {
		t.Errorf("body has %d fields, want 8: %v", len(raw), raw)
	}
	if n := e.reads.n.Load(); n != 1 {
		t.Fatalf("%d Redis reads, want 1", n)
	}

	rec := httptest.NewRecorder()
	e.m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, w := range []string{`ra_api_cache_requests_total{result="hit"} 3`, `ra_api_cache_requests_total{result="miss"} 1`} {
		if !strings.Contains(rec.Body.String(), w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
}

func TestNewValueVisibleOnceTTLPasses(t *testing.T) {
	e := mustEnv(t)
	e.put(t, "mem", 1, "10", "10", "10", t0, t0)
	count := func() int64 {
		t.Helper()
		rec := e.get("?type=mem")
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d", rec.Code)
		}
		return decode[Response](t, rec).Count
	}
	if c := count(); c != 1 {
		t.Fatalf("count %d, want 1", c)
	}
	e.put(t, "mem", 2, "30", "10", "20", t0, t1)
	e.clk.Advance(59 * time.Second)
	if c := count(); c != 1 {
		t.Fatalf("within the TTL: count %d, want the cached 1", c)
	}
	e.clk.Advance(time.Second)
	if c := count(); c != 2 {
		t.Fatalf("after the TTL: count %d, want 2", c)
	}
}

func TestConcurrentColdRequestsReadRedisOnce(t *testing.T) {
	e := mustEnv(t)
	e.put(t, "cpu_usage", 3, "6", "1", "3", t0, t1)

	const n = 100
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			codes[i] = e.get("?type=cpu_usage").Code
		})
	}
	close(start)
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Fatalf("request %d: status %d", i, c)
		}
	}
	if got := e.reads.n.Load(); got != 1 {
		t.Fatalf("%d concurrent cold requests made %d HGETALLs, want 1", n, got)
	}
}

func TestStaleIfErrorAndUnavailable(t *testing.T) {
	e := mustEnv(t)
	e.srv.RequireReal(t)
	e.put(t, "cpu_usage", 2, "100", "40", "60", t0, t1)
	if rec := e.get("?type=cpu_usage"); rec.Code != http.StatusOK {
		t.Fatalf("warm-up: status %d", rec.Code)
	}
	e.srv.Stop(t)

	e.clk.Advance(time.Minute + 7*time.Second)
	rec := e.get("?type=cpu_usage")
	if rec.Code != http.StatusOK {
		t.Fatalf("stale: status %d, want 200: %s", rec.Code, rec.Body)
	}
	h := rec.Header()
	if h.Get("X-Cache") != "HIT" || h.Get("Cache-Status") != "api; hit; ttl=-7; fwd=stale" || h.Get("Cache-Control") != "max-age=0" {
		t.Fatalf("stale headers %v", h)
	}
	if got := decode[Response](t, rec); got.Count != 2 || got.AverageValue != 50 {
		t.Fatalf("stale body %+v", got)
	}

	// Nothing cached for this type: 503 with Retry-After.
	rec = e.get("?type=mem")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("uncached type with Redis down: status %d, Retry-After %q; want 503 with Retry-After",
			rec.Code, rec.Header().Get("Retry-After"))
	}
	if p := decode[problemBody](t, rec); p.Status != 503 {
		t.Fatalf("problem %+v", p)
	}

	// Past CACHE_STALE_MAX the stale value is gone too.
	e.clk.Advance(testCache.StaleMax)
	if rec := e.get("?type=cpu_usage"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("past the stale window: status %d, want 503", rec.Code)
	}

	mrec := httptest.NewRecorder()
	e.m.Handler().ServeHTTP(mrec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(mrec.Body.String(), `ra_api_cache_requests_total{result="stale"} 1`) {
		t.Errorf("/metrics lacks the stale count")
	}
}

func TestCorruptHash(t *testing.T) {
	e := mustEnv(t)
	if err := e.rdb.HSet(context.Background(), e.keys.Summary(0, "bad"), store.SummaryCount, "x").Err(); err != nil {
		t.Fatal(err)
	}
	if rec := e.get("?type=bad"); rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", rec.Code)
	}
}

func BenchmarkHit(b *testing.B) {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	k := store.NewKeys("metrics")
	if err := rdb.HSet(context.Background(), k.Summary(0, "cpu_usage"),
		store.SummaryCount, 1, store.SummarySum, "1", store.SummaryMin, "1", store.SummaryMax, "1",
		store.SummaryFirstTS, t0, store.SummaryLastTS, t0).Err(); err != nil {
		b.Fatal(err)
	}
	st, err := store.New(rdb, k.Family(), 1)
	if err != nil {
		b.Fatal(err)
	}
	h, err := NewHandler(st, config.Cache{TTL: time.Hour, MaxEntries: 10, ReadTimeout: time.Second}, telemetry.New(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest(http.MethodGet, "/api/metrics/summary?type=cpu_usage", nil)
		for pb.Next() {
			w := &discard{h: http.Header{}}
			h.ServeHTTP(w, r)
			if w.code != http.StatusOK {
				b.Errorf("status %d", w.code)
				return
			}
		}
	})
}

type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(c int)           { d.code = c }
