package series

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
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

// roundTrips counts what reaches Redis: pipelines and single commands,
// except the connection handshake go-redis sends on a new connection.
type roundTrips struct{ n atomic.Int64 }

func handshake(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client", "auth", "select", "ping":
		return true
	}
	return false
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !handshake(cmd) {
			r.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !handshake(cmds[0]) {
			r.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

type env struct {
	h     *Handler
	rdb   redis.UniversalClient
	k     store.Keys
	clk   *fakeClock
	trips *roundTrips
}

var testCache = config.Cache{TTL: time.Minute, PastTTL: 10 * time.Minute, StaleMax: 10 * time.Minute, MaxEntries: 100, ReadTimeout: 2 * time.Second}

// now: 2026-02-15T10:07:30Z.
var now = time.Date(2026, 2, 15, 10, 7, 30, 0, time.UTC)

func mustEnv(tb testing.TB, partitions int) *env {
	tb.Helper()
	srv := redistest.Start(tb)
	rdb, err := redisclient.New(redisclient.Config{URL: srv.URL(), DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = rdb.Close() })
	clk := &fakeClock{t: now}
	k := store.NewKeys("metrics")
	st, err := store.New(rdb, k.Family(), max(partitions, 1))
	if err != nil {
		tb.Fatal(err)
	}
	h, err := New(st, Options{Retention: 7 * 24 * time.Hour, Cache: testCache, Now: clk.Now})
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{h: h, rdb: rdb, k: k, clk: clk, trips: &roundTrips{}}
	rdb.AddHook(e.trips)
	return e
}

// put writes cells as the aggregator would: minute of event time at, in
// partition p, and marks the type known there.
func (e *env) put(tb testing.TB, p int, typ string, at time.Time, c store.Cell) {
	tb.Helper()
	ctx := context.Background()
	us := at.UnixMicro()
	key := e.k.Bucket(p, typ, store.Hour(us))
	f := store.BucketField(store.MinuteOfHour(us))
	if old, err := e.rdb.HGet(ctx, key, f).Result(); err == nil {
		prev, _ := store.DecodeCell(old)
		c = prev.Merge(c)
	}
	if err := e.rdb.HSet(ctx, key, f, store.EncodeCell(c)).Err(); err != nil {
		tb.Fatal(err)
	}
	if err := e.rdb.ZAddGT(ctx, e.k.Types(p), redis.Z{Score: float64(us), Member: typ}).Err(); err != nil {
		tb.Fatal(err)
	}
}

func (e *env) get(path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if strings.HasPrefix(path, "/api/metrics/summary") {
		e.h.ServeSummary(rec, r)
	} else {
		e.h.ServeHTTP(rec, r)
	}
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

func at(hhmmss string) time.Time {
	t, err := time.Parse(time.DateOnly+"T"+time.TimeOnly+"Z07:00", "2026-02-15T"+hhmmss+"Z")
	if err != nil {
		panic(err)
	}
	return t
}

func TestSeriesMergesPartitionsAndFillsEmptySteps(t *testing.T) {
	e := mustEnv(t, 3)
	e.put(t, 0, "cpu", at("09:00:10"), store.Of(10))
	e.put(t, 2, "cpu", at("09:00:50"), store.Of(30))
	e.put(t, 1, "cpu", at("09:03:00"), store.Of(-5))
	e.put(t, 1, "cpu", at("09:59:59"), store.Of(7)) // the last minute of the hour
	e.put(t, 0, "cpu", at("10:00:00"), store.Of(100))
	e.put(t, 0, "mem", at("09:00:00"), store.Of(1e9)) // another type: never mixed in
	e.trips.n.Store(0)

	rec := e.get("/api/metrics/series?type=cpu&from=2026-02-15T09:00:00Z&to=2026-02-15T10:00:00Z&step=5m")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if n := e.trips.n.Load(); n != 1 {
		t.Errorf("%d round trips to Redis, want 1 (one pipeline)", n)
	}
	got := decode[Series](t, rec)
	if got.Type != "cpu" || got.From != "2026-02-15T09:00:00Z" || got.To != "2026-02-15T10:00:00Z" || got.Step != "5m" || len(got.Points) != 12 {
		t.Fatalf("series header %+v with %d points", got, len(got.Points))
	}
	p0 := got.Points[0]
	if p0.T != "2026-02-15T09:00:00Z" || p0.Count != 3 || *p0.AverageValue != 35.0/3 || *p0.MinValue != -5 || *p0.MaxValue != 30 {
		t.Errorf("first point %+v", p0)
	}
	for _, p := range got.Points[1:11] {
		if p.Count != 0 || p.AverageValue != nil || p.MinValue != nil || p.MaxValue != nil {
			t.Errorf("empty step %s: %+v, want count 0 and nulls", p.T, p)
		}
	}
	if last := got.Points[11]; last.T != "2026-02-15T09:55:00Z" || last.Count != 1 || *last.MaxValue != 7 {
		t.Errorf("last point %+v (10:00 is outside [from, to))", last)
	}
	var raw map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &raw)
	pt := raw["points"].([]any)[1].(map[string]any)
	if v, ok := pt["average_value"]; !ok || v != nil {
		t.Errorf("empty point must carry average_value: null, got %v", pt)
	}
}

func TestWindowedSummary(t *testing.T) {
	e := mustEnv(t, 2)
	e.put(t, 0, "cpu", at("09:52:59"), store.Of(1000)) // before the window
	e.put(t, 0, "cpu", at("09:53:00"), store.Of(10))
	e.put(t, 1, "cpu", at("10:07:10"), store.Of(20)) // the current minute counts
	rec := e.get("/api/metrics/summary?type=cpu&window=15m")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	got := decode[Summary](t, rec)
	if got.From != "2026-02-15T09:53:00Z" || got.To != "2026-02-15T10:08:00Z" || got.Count != 2 || got.Sum != 30 ||
		*got.AverageValue != 15 || *got.MinValue != 10 || *got.MaxValue != 20 {
		t.Errorf("summary %+v", got)
	}
	// A known type with nothing in range: 200, count 0.
	rec = e.get("/api/metrics/summary?type=cpu&from=2026-02-15T08:00:00Z&to=2026-02-15T08:30:00Z")
	if got := decode[Summary](t, rec); rec.Code != http.StatusOK || got.Count != 0 || got.AverageValue != nil {
		t.Errorf("empty range: %d %s", rec.Code, rec.Body)
	}
	// A type never aggregated: 404, not cached.
	rec = e.get("/api/metrics/summary?type=nope&window=15m")
	if rec.Code != http.StatusNotFound {
		t.Errorf("unknown type: %d %s", rec.Code, rec.Body)
	}
	e.put(t, 0, "nope", at("10:00:00"), store.Of(1))
	if rec := e.get("/api/metrics/summary?type=nope&window=15m"); rec.Code != http.StatusOK {
		t.Errorf("after the first metric: %d (404 must not be cached)", rec.Code)
	}
}

func TestCachingRecentAndPastRanges(t *testing.T) {
	e := mustEnv(t, 1)
	e.put(t, 0, "cpu", at("09:00:00"), store.Of(1))
	e.trips.n.Store(0)
	steps := []struct {
		name, path, xcache, cacheControl string
	}{
		{"recent miss", "/api/metrics/summary?type=cpu&window=1h", "MISS", "max-age=60"},
		{"recent hit", "/api/metrics/summary?type=cpu&window=1h", "HIT", "max-age=60"},
		{"same minute, same entry", "/api/metrics/summary?type=cpu&from=2026-02-15T09:08:00Z&to=2026-02-15T10:07:01Z", "HIT", "max-age=60"},
		{"past range: longer TTL", "/api/metrics/series?type=cpu&from=2026-02-15T08:00:00Z&to=2026-02-15T09:30:00Z", "MISS", "max-age=600"},
		{"past range hit", "/api/metrics/series?type=cpu&from=2026-02-15T08:00:00Z&to=2026-02-15T09:30:00Z", "HIT", "max-age=600"},
	}
	for _, s := range steps {
		rec := e.get(s.path)
		if rec.Code != http.StatusOK || rec.Header().Get("X-Cache") != s.xcache || rec.Header().Get("Cache-Control") != s.cacheControl {
			t.Errorf("%s: %d X-Cache %q Cache-Control %q: %s", s.name, rec.Code, rec.Header().Get("X-Cache"), rec.Header().Get("Cache-Control"), rec.Body)
		}
	}
	if n := e.trips.n.Load(); n != 2 {
		t.Errorf("%d Redis reads, want 2", n)
	}
	// Concurrent misses of one query share one read.
	e.clk.Advance(time.Hour)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.get("/api/metrics/series?type=cpu&window=3h&step=10m")
		}()
	}
	wg.Wait()
	if n := e.trips.n.Load(); n != 3 {
		t.Errorf("%d Redis reads after 20 concurrent misses, want 3", n)
	}
}

// TestBadRequests: every 400 the issue lists, at the HTTP level: a problem
// naming the query parameter, and no Redis read.
func TestBadRequests(t *testing.T) {
	e := mustEnv(t, 1)
	tests := []struct {
		name, path, field string
	}{
		{"from equals to", "/api/metrics/summary?type=cpu&from=2026-02-15T09:00:00Z&to=2026-02-15T09:00:00Z", "to"},
		{"from after to", "/api/metrics/series?type=cpu&from=2026-02-15T10:00:00Z&to=2026-02-15T09:00:00Z", "to"},
		{"from unparsable", "/api/metrics/summary?type=cpu&from=2026-13-01T00:00:00Z&to=2026-02-15T09:00:00Z", "from"},
		{"to unparsable", "/api/metrics/series?type=cpu&from=2026-02-15T09:00:00Z&to=now", "to"},
		{"window not a duration", "/api/metrics/summary?type=cpu&window=15", "window"},
		{"step not a duration", "/api/metrics/series?type=cpu&window=1h&step=five", "step"},
		{"step not a multiple of 1m", "/api/metrics/series?type=cpu&window=1h&step=90s", "step"},
		{"too many points", "/api/metrics/series?type=cpu&window=48h&step=1m", "step"},
		{"from beyond retention", "/api/metrics/summary?type=cpu&from=2026-01-01T00:00:00Z&to=2026-02-15T09:00:00Z", "from"},
		{"window beyond retention", "/api/metrics/series?type=cpu&window=200h&step=1h", "window"},
		{"type missing", "/api/metrics/series?window=1h", "type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.get(tt.path)
			if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("status %d %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
			var p struct {
				Status int    `json:"status"`
				Detail string `json:"detail"`
				Errors []struct{ Field, Message string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if p.Status != 400 || len(p.Errors) == 0 || p.Errors[0].Field != tt.field || !strings.Contains(p.Detail, tt.field) {
				t.Fatalf("problem %+v, want errors[0].field %q", p, tt.field)
			}
			if strings.Contains(tt.name, "retention") && !strings.Contains(p.Errors[0].Message, "168h") {
				t.Errorf("retention problem does not say the retention: %q", p.Errors[0].Message)
			}
		})
	}
	if n := e.trips.n.Load(); n != 0 {
		t.Errorf("bad requests read Redis %d times", n)
	}
}

func TestRedisDownIs503(t *testing.T) {
	e := mustEnv(t, 1)
	_ = e.rdb.Close()
	rec := e.get("/api/metrics/series?type=cpu&window=1h")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}

// BenchmarkSeries24h: GET /api/metrics/series over 24h at a 1m step (1,440
// points from 25 hour hashes, every minute filled) against a real Redis,
// every request a cache miss (the caches are dropped before each), so it
// measures the pipelined read, the merge and the JSON encoding. Reports
// p50 and p99 latency.
func BenchmarkSeries24h(b *testing.B) {
	e := mustEnv(b, 1)
	ctx := context.Background()
	start := now.Truncate(time.Minute).Add(-24 * time.Hour)
	_, err := e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 24*60 + 10 {
			us := start.Add(time.Duration(i) * time.Minute).UnixMicro()
			p.HSet(ctx, e.k.Bucket(0, "cpu", store.Hour(us)), store.BucketField(store.MinuteOfHour(us)),
				store.EncodeCell(store.Cell{Count: 60, Sum: 3000.5 + float64(i), Min: 0.25, Max: 99.75}))
		}
		p.ZAdd(ctx, e.k.Types(0), redis.Z{Score: float64(now.UnixMicro()), Member: "cpu"})
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	path := "/api/metrics/series?type=cpu&window=24h&step=1m"
	if rec := e.get(path); rec.Code != http.StatusOK || len(decode[Series](&testing.T{}, rec).Points) != 1440 {
		b.Fatalf("status %d", rec.Code)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		e.dropCaches(b)
		b.StartTimer()
		t0 := time.Now()
		rec := e.get(path)
		lat = append(lat, time.Since(t0))
		if rec.Code != http.StatusOK || rec.Header().Get("X-Cache") != "MISS" {
			b.Fatalf("status %d X-Cache %s", rec.Code, rec.Header().Get("X-Cache"))
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}

func (e *env) dropCaches(tb testing.TB) {
	tb.Helper()
	h, err := New(e.h.store, e.h.opts)
	if err != nil {
		tb.Fatal(err)
	}
	e.h.recent, e.h.past = h.recent, h.past
}
