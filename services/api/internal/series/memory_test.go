package series_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/cache"
	"github.com/resilientanalytics/ra/services/api/internal/series"
	"github.com/resilientanalytics/ra/services/api/internal/summary"
	"github.com/resilientanalytics/ra/services/api/internal/typelist"
)

// TestFloodStaysWithinCacheMaxBytes sends thousands of distinct series,
// windowed and all-time summary and types queries through the real
// handlers, sharing one small budget as server.New wires them, and checks
// the caches' own accounting never passes it. The heap is logged, not
// asserted: the collector decides when it shrinks.
func TestFloodStaysWithinCacheMaxBytes(t *testing.T) {
	const (
		maxBytes = 2 << 20
		types    = 600
	)
	srv := redistest.Start(t)
	rdb, err := redisclient.New(redisclient.Config{URL: srv.URL(), DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	k := store.NewKeys("metrics")
	st, err := store.New(rdb, k.Family(), 1)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Minute)
	ctx := context.Background()

	// 600 known types with an all-time summary; cpu has a cell in every
	// minute of the last two days, so its series points are not empty.
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range types {
			typ := fmt.Sprintf("type_%04d", i)
			p.HSet(ctx, k.Summary(0, typ), store.SummaryCount, 1, store.SummarySum, "1.5", store.SummaryMin, "1.5",
				store.SummaryMax, "1.5", store.SummaryFirstTS, now.UnixMicro(), store.SummaryLastTS, now.UnixMicro())
			p.ZAdd(ctx, k.Types(0), redis.Z{Score: float64(now.UnixMicro()), Member: typ})
		}
		for m := range 48 * 60 {
			us := now.Add(-time.Duration(m) * time.Minute).UnixMicro()
			p.HSet(ctx, k.Bucket(0, "cpu", store.Hour(us)), store.BucketField(store.MinuteOfHour(us)), store.EncodeCell(store.Of(float64(m))))
		}
		p.ZAdd(ctx, k.Types(0), redis.Z{Score: float64(now.UnixMicro()), Member: "cpu"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	budget, err := cache.NewBudget(maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	// A TTL longer than the test: nothing expires, so only the budget evicts.
	cfg := config.Cache{TTL: time.Hour, PastTTL: 10 * time.Hour, StaleMax: 10 * time.Minute, MaxEntries: 10000, ReadTimeout: 5 * time.Second}
	windows, err := series.New(st, series.Options{Retention: 7 * 24 * time.Hour, Cache: cfg, Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	summaries, err := summary.NewHandler(st, cfg, nil, summary.Options{Windowed: http.HandlerFunc(windows.ServeSummary), Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	typeList, err := typelist.New(st, typelist.Options{Cache: cfg, Budget: budget})
	if err != nil {
		t.Fatal(err)
	}

	ts := func(t time.Time) string { return t.Format(time.RFC3339) }
	var queries []struct {
		h    http.Handler
		path string
	}
	add := func(h http.Handler, path string) {
		queries = append(queries, struct {
			h    http.Handler
			path string
		}{h, path})
	}
	for i := range types {
		typ := fmt.Sprintf("type_%04d", i)
		// Past ranges of cpu, 24h at 1m, each shifted by a minute: the
		// probe's flood. Then recent ones of every type, the all-time and
		// a windowed summary, and pages of the types list.
		to := now.Add(-2*time.Hour - time.Duration(i)*time.Minute)
		add(windows, "/api/metrics/series?type=cpu&step=1m&from="+ts(to.Add(-24*time.Hour))+"&to="+ts(to))
		add(windows, "/api/metrics/series?type="+typ+"&window=24h&step=1m")
		add(summaries, "/api/metrics/summary?type="+typ)
		add(summaries, "/api/metrics/summary?type="+typ+"&window=24h")
		add(typeList, fmt.Sprintf("/api/metrics/types?limit=%d", i%typelist.MaxLimit+1))
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	var served int64
	get := func(h http.Handler, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, rec.Code, rec.Body)
		}
		served += int64(rec.Body.Len())
		return rec
	}
	var peak int64
	for _, q := range queries {
		get(q.h, q.path)
		if b := budget.Bytes(); b > peak {
			peak = b
		}
		if budget.Bytes() > maxBytes {
			t.Fatalf("after GET %s the caches hold %d bytes > CACHE_MAX_BYTES %d", q.path, budget.Bytes(), maxBytes)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)

	// The budget was used, not avoided by storing nothing, and it kept the
	// newest entries: the last query hits, the first was evicted.
	if peak < maxBytes/2 {
		t.Errorf("peak accounted bytes %d: the flood should have filled most of %d", peak, maxBytes)
	}
	last := queries[len(queries)-1]
	if rec := get(last.h, last.path); rec.Header().Get("X-Cache") != "HIT" {
		t.Errorf("newest entry %s: X-Cache %q, want HIT", last.path, rec.Header().Get("X-Cache"))
	}
	if rec := get(queries[0].h, queries[0].path); rec.Header().Get("X-Cache") != "MISS" {
		t.Errorf("oldest entry %s: X-Cache %q, want MISS (evicted)", queries[0].path, rec.Header().Get("X-Cache"))
	}
	t.Logf("%d queries served %.1f MiB of bodies; caches hold %d bytes (peak %d) of CACHE_MAX_BYTES %d",
		len(queries), float64(served)/(1<<20), budget.Bytes(), peak, maxBytes)
	t.Logf("heap in use: %.1f MiB before, %.1f MiB after (after GC)",
		float64(before.HeapInuse)/(1<<20), float64(after.HeapInuse)/(1<<20))
	runtime.KeepAlive(windows)
	runtime.KeepAlive(summaries)
	runtime.KeepAlive(typeList)
}
