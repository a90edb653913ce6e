package server_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/store"
)

// cacheGauges scrapes ra_api_cache_bytes and ra_api_cache_max_bytes.
func cacheGauges(t *testing.T, e *env) (used, limit float64) {
	t.Helper()
	resp, err := http.Get(e.api.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	read := func(name string) float64 {
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(raw)
		if m == nil {
			t.Fatalf("/metrics lacks %s", name)
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return read("ra_api_cache_bytes"), read("ra_api_cache_max_bytes")
}

// TestCachesShareOneBudget: CACHE_MAX_BYTES reaches the budget, and the
// summary, series and types caches all account into that one budget.
func TestCachesShareOneBudget(t *testing.T) {
	e := start(t, map[string]string{"CACHE_MAX_BYTES": "1MiB"})
	ctx := context.Background()
	now := time.Now().UnixMicro()
	if err := e.rdb.HSet(ctx, e.keys.Summary(0, "cpu"), store.SummaryCount, 1, store.SummarySum, "2", store.SummaryMin, "2",
		store.SummaryMax, "2", store.SummaryFirstTS, now, store.SummaryLastTS, now).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.ZAdd(ctx, e.keys.Types(0), redis.Z{Score: float64(now), Member: "cpu"}).Err(); err != nil {
		t.Fatal(err)
	}
	used, limit := cacheGauges(t, e)
	if used != 0 || limit != 1<<20 {
		t.Fatalf("before any read: cache_bytes %v, cache_max_bytes %v, want 0 and %d", used, limit, 1<<20)
	}
	for _, path := range []string{
		"/api/metrics/summary?type=cpu",
		"/api/metrics/series?type=cpu&window=1h&step=1m",
		"/api/metrics/summary?type=cpu&window=1h",
		"/api/metrics/types",
	} {
		if r := do(t, mustReq(t, "GET", e.api.URL+path)); r.status != http.StatusOK || r.header.Get("X-Cache") != "MISS" {
			t.Fatalf("GET %s = %d X-Cache %q, want a 200 miss", path, r.status, r.header.Get("X-Cache"))
		}
		next, _ := cacheGauges(t, e)
		if next <= used || next > limit {
			t.Fatalf("after GET %s cache_bytes %v (was %v), want it to grow within %v", path, next, used, limit)
		}
		used = next
	}
}
