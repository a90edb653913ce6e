package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/store"
)

// internalText returns the first piece of internal error text in body: an
// address or port of the Redis at url, or Go error wording.
func internalText(body, url string) string {
	addr := strings.TrimPrefix(url, "redis://")
	_, port, _ := strings.Cut(addr, ":")
	for _, s := range []string{"127.0.0.1", addr, ":" + port, "dial tcp", "connection refused", "i/o timeout", "EOF",
		"context deadline", "goroutine ", ".go:"} {
		if strings.Contains(body, s) {
			return s
		}
	}
	return ""
}

func rawGet(t *testing.T, url, requestID string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Request-ID", requestID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// With Redis down, every endpoint's 5xx/503 body, /health and /api/system
// say what failed in plain words, never an address or Go error text; the
// log has the cause with the request id, and every log line, go-redis'
// own included, is JSON.
func TestRedisDownLeaksNoInternalsAndLogsJSON(t *testing.T) {
	e := startKeyed(t, map[string]string{})
	e.srv.RequireReal(t)
	redisclient.SetLogger(slog.New(slog.NewJSONHandler(e.logs, nil)))
	t.Cleanup(logging.Enable)
	if r := e.post(t, seed); r.status != 201 {
		t.Fatalf("before: %d", r.status)
	}
	e.srv.Kill(t)

	reads := []struct {
		path   string
		status int
	}{
		{"/api/metrics/summary?type=never_cached", 503},
		{"/api/metrics/summary?type=never_cached&window=15m", 503},
		{"/api/metrics/series?type=never_cached&window=15m&step=5m", 503},
		{"/api/metrics/types", 503},
		{"/health", 503},
		{"/api/system", 200},
		{"/api/external-data/circuit", 200},
	}
	for i, rd := range reads {
		id := "leak-" + string(rune('a'+i))
		status, body := rawGet(t, e.api.URL+rd.path, id)
		if status != rd.status {
			t.Errorf("%s: %d %s, want %d", rd.path, status, body, rd.status)
		}
		if leak := internalText(body, e.srv.URL()); leak != "" {
			t.Errorf("%s body quotes %q: %s", rd.path, leak, body)
		}
		if rd.path == "/health" && !strings.Contains(body, `"redis":"unreachable"`) {
			t.Errorf("/health body %s, want redis unreachable", body)
		}
	}
	r := e.post(t, seed, "X-Request-ID", "leak-post")
	if r.status != 503 {
		t.Errorf("POST: %d", r.status)
	}
	if leak := internalText(toJSON(r.body), e.srv.URL()); leak != "" {
		t.Errorf("POST 503 body quotes %q: %v", leak, r.body)
	}

	logs := e.logs.String()
	failed := map[string]bool{}
	goRedis := 0
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["component"] == "go-redis" {
			goRedis++
		}
		if id, _ := rec["request_id"].(string); id != "" && rec["err"] != nil {
			failed[id] = true
		}
	}
	if goRedis == 0 {
		t.Errorf("no go-redis line reached the service's log:\n%s", logs)
	}
	for _, id := range []string{"leak-a", "leak-b", "leak-c", "leak-d", "leak-e", "leak-f", "leak-post"} {
		if !failed[id] {
			t.Errorf("no error line with the cause and request id %s:\n%s", id, logs)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(e.access.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("access log line is not JSON: %q", line)
		}
	}
}

// A corrupt hash of one type answers 500 summary-corrupt on every read of
// that type (summary, windowed summary, series), never a 503 "retry"; the
// other types are served.
func TestCorruptTypeIs500OnEveryRead(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	now := time.Now().UTC()
	us := now.UnixMicro()
	// The bug of issue 14: a sum that overflowed to inf.
	e.rdb.HSet(ctx, e.keys.Summary(0, "poisoned"), store.SummaryCount, 2, store.SummarySum, "inf", store.SummaryMin, "1",
		store.SummaryMax, "1.7e308", store.SummaryFirstTS, us, store.SummaryLastTS, us)
	e.rdb.HSet(ctx, e.keys.Bucket(0, "poisoned", store.Hour(us)), store.BucketField(store.MinuteOfHour(us)), "2 inf 1 1.7e308")
	e.rdb.HSet(ctx, e.keys.Summary(0, "healthy"), store.SummaryCount, 1, store.SummarySum, "5", store.SummaryMin, "5",
		store.SummaryMax, "5", store.SummaryFirstTS, us, store.SummaryLastTS, us)
	e.rdb.HSet(ctx, e.keys.Bucket(0, "healthy", store.Hour(us)), store.BucketField(store.MinuteOfHour(us)), "1 5 5 5")
	for _, typ := range []string{"poisoned", "healthy"} {
		e.rdb.ZAdd(ctx, e.keys.Types(0), redis.Z{Score: float64(us), Member: typ})
	}
	for _, path := range []string{
		"/api/metrics/summary?type=%s",
		"/api/metrics/summary?type=%s&window=15m",
		"/api/metrics/series?type=%s&window=15m&step=5m",
	} {
		status, body := rawGet(t, e.api.URL+strings.Replace(path, "%s", "poisoned", 1), "corrupt")
		if status != 500 || !strings.Contains(body, "/summary-corrupt") {
			t.Errorf("%s of the corrupt type: %d %s, want 500 summary-corrupt", path, status, body)
		}
		if status, body := rawGet(t, e.api.URL+strings.Replace(path, "%s", "healthy", 1), "ok"); status != 200 {
			t.Errorf("%s of a healthy type: %d %s", path, status, body)
		}
	}
}

// A read served stale while Redis is down logs its cause as JSON with the
// request id.
func TestStaleReadsLogTheRequestID(t *testing.T) {
	e := startKeyed(t, map[string]string{"CACHE_TTL": "1ms"})
	e.srv.RequireReal(t)
	ctx := context.Background()
	us := time.Now().UTC().UnixMicro()
	e.rdb.HSet(ctx, e.keys.Summary(0, "cpu_usage"), store.SummaryCount, 1, store.SummarySum, "5", store.SummaryMin, "5",
		store.SummaryMax, "5", store.SummaryFirstTS, us, store.SummaryLastTS, us)
	e.rdb.ZAdd(ctx, e.keys.Types(0), redis.Z{Score: float64(us), Member: "cpu_usage"})
	paths := map[string]string{
		"stale-summary": "/api/metrics/summary?type=cpu_usage",
		"stale-series":  "/api/metrics/series?type=cpu_usage&window=15m&step=5m",
	}
	for _, p := range paths {
		if status, body := rawGet(t, e.api.URL+p, "warm"); status != 200 {
			t.Fatalf("%s: %d %s", p, status, body)
		}
	}
	e.srv.Kill(t)
	time.Sleep(10 * time.Millisecond) // past CACHE_TTL: the next reads go to Redis and fail
	for id, p := range paths {
		if status, body := rawGet(t, e.api.URL+p, id); status != 200 {
			t.Fatalf("%s with Redis down: %d %s, want the stale value", p, status, body)
		}
	}
	logs := e.logs.String()
	for id := range paths {
		found := false
		for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line is not JSON: %q", line)
			}
			if rec["request_id"] == id && strings.HasPrefix(rec["msg"].(string), "serving stale") && rec["err"] != nil {
				found = true
			}
		}
		if !found {
			t.Errorf("no stale-read line with request id %s:\n%s", id, logs)
		}
	}
}
