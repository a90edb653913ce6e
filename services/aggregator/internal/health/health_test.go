package health_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/internal/consumer"
	"github.com/resilientanalytics/ra/services/aggregator/internal/health"
	"github.com/resilientanalytics/ra/services/aggregator/internal/streamtest"
	"github.com/resilientanalytics/ra/services/aggregator/internal/telemetry"
)

type loop struct {
	beat, batch time.Time
}

func (l loop) LastBeat() time.Time       { return l.beat }
func (l loop) LastBatch() time.Time      { return l.batch }
func (l loop) StaleAfter() time.Duration { return 10 * time.Second }
func get(t *testing.T, h http.Handler, path string) (int, map[string]any, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Body)
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	return rec.Code, m, string(body)
}

func readArgs(stream string) *redis.XReadGroupArgs {
	return &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, ">"}, Count: 1, Block: -1}
}

func newChecker(t *testing.T, rdb redis.UniversalClient, family string, l health.Loop) *health.Checker {
	t.Helper()
	st := streamtest.Store(t, rdb, family, 1)
	c, err := health.New(st, []health.Partition{{Stream: st.Keys().Stream(0), Group: st.Group(0, "g"), Loop: l}}, health.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var _ health.Loop = loop{}
var _ health.Loop = (*consumer.Consumer)(nil)

func TestHealth(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	stream := store.NewKeys("metrics").Stream(0)
	streamtest.EnsureGroup(t, rdb, "metrics", 0, "g")
	streamtest.Add(t, rdb, stream, streamtest.Metric("cpu", 1, 1), streamtest.Metric("cpu", 1, 2), streamtest.Metric("cpu", 1, 3))
	if err := rdb.XReadGroup(ctx, readArgs(stream)).Err(); err != nil {
		t.Fatal(err)
	}
	batch := time.Date(2026, 2, 15, 10, 0, 0, 0, time.UTC)

	t.Run("healthy shows pending, lag and last batch", func(t *testing.T) {
		c := newChecker(t, rdb, "metrics", loop{beat: time.Now(), batch: batch})
		code, body, raw := get(t, c.Handler(), "/health")
		if code != 200 || body["status"] != "ok" {
			t.Fatalf("%d %s", code, raw)
		}
		if body["pending"] != 1.0 || body["lag"] != 2.0 || body["last_batch_at"] != "2026-02-15T10:00:00Z" {
			t.Errorf("body %s", raw)
		}
		checks := body["checks"].(map[string]any)
		if checks["redis"] != "ok" || checks["consumer"] != "ok" {
			t.Errorf("checks %v", checks)
		}
	})
	t.Run("stalled loop is unhealthy", func(t *testing.T) {
		c := newChecker(t, rdb, "metrics", loop{beat: time.Now().Add(-time.Minute)})
		code, body, raw := get(t, c.Handler(), "/health")
		if code != 503 || !strings.HasPrefix(body["checks"].(map[string]any)["consumer"].(string), "stalled") {
			t.Errorf("%d %s", code, raw)
		}
		if body["last_batch_at"] != nil {
			t.Errorf("last_batch_at = %v, want null before any batch", body["last_batch_at"])
		}
	})
	t.Run("lag after a tombstone is counted", func(t *testing.T) {
		other := store.NewKeys("other").Stream(0)
		ids := streamtest.Add(t, rdb, other, streamtest.Metric("cpu", 1, 1), streamtest.Metric("cpu", 1, 2), streamtest.Metric("cpu", 1, 3))
		streamtest.EnsureGroup(t, rdb, "other", 0, "g")
		rdb.XDel(ctx, other, ids[1]) // a tombstone after the group's position: XINFO's lag is null
		c := newChecker(t, rdb, "other", loop{beat: time.Now()})
		code, body, raw := get(t, c.Handler(), "/health")
		if code != 200 || body["lag"] != 2.0 {
			t.Errorf("%d %s, want lag 2 (counted after the last-delivered id)", code, raw)
		}
	})
	t.Run("unknown lag: far behind and XINFO cannot tell", func(t *testing.T) {
		far := store.NewKeys("far").Stream(0)
		pipe := rdb.Pipeline()
		for i := range store.LagCountCap + 2 {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: far, Values: []any{"i", i}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		streamtest.EnsureGroup(t, rdb, "far", 0, "g")
		first, _ := rdb.XRangeN(ctx, far, "-", "+", 2).Result()
		rdb.XDel(ctx, far, first[1].ID)
		c := newChecker(t, rdb, "far", loop{beat: time.Now()})
		code, body, raw := get(t, c.Handler(), "/health")
		if code != 200 || body["lag"] != "unknown" {
			t.Errorf("%d %.300s", code, raw)
		}
	})
	t.Run("metrics and livez", func(t *testing.T) {
		m := telemetry.New()
		c, err := health.New(streamtest.Store(t, rdb, "metrics", 1), []health.Partition{{Stream: stream, Group: streamtest.Group(t, rdb, "metrics", 0, "g"), Loop: loop{beat: time.Now()}}}, health.Options{Metrics: m, RefreshInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		m.Processed.Add(3)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(rctx) }() // refreshes the gauges at once
		streamtest.Eventually(t, 5*time.Second, func() string {
			if _, _, raw := get(t, c.Handler(), "/metrics"); !strings.Contains(raw, "aggregator_group_pending 1") {
				return "gauges not refreshed"
			}
			return ""
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		code, _, raw := get(t, c.Handler(), "/metrics")
		for _, want := range []string{"aggregator_processed_total 3", "aggregator_group_pending 1", "aggregator_group_lag 2",
			"aggregator_batch_size_bucket", "aggregator_apply_seconds_bucket", "aggregator_reclaimed_total", "aggregator_dead_lettered_total"} {
			if !strings.Contains(raw, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		if code != 200 {
			t.Errorf("metrics status %d", code)
		}
		if code, _, _ := get(t, c.Handler(), "/livez"); code != 200 {
			t.Errorf("livez %d", code)
		}
	})
	t.Run("redis down", func(t *testing.T) {
		srv.RequireReal(t)
		var logs bytes.Buffer
		st := streamtest.Store(t, streamtest.ServiceClient(t, srv.URL()), "metrics", 1)
		c, err := health.New(st, []health.Partition{{Stream: st.Keys().Stream(0), Group: st.Group(0, "g"), Loop: loop{beat: time.Now()}}},
			health.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		srv.Kill(t)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/health", nil)
		req.Header.Set("X-Request-Id", "probe-7")
		c.Handler().ServeHTTP(rec, req)
		raw := rec.Body.String()
		var body map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != 503 || body["checks"].(map[string]any)["redis"] != "unreachable" || body["pending"] != nil {
			t.Errorf("%d %s", rec.Code, raw)
		}
		if leak := internalText(raw, srv.URL()); leak != "" {
			t.Errorf("/health body quotes %q: %s", leak, raw)
		}
		if l := logs.String(); !strings.Contains(l, `"request_id":"probe-7"`) || !strings.Contains(l, "connection refused") {
			t.Errorf("the log line lacks the request id or the cause: %s", l)
		}
		if code, _, _ := get(t, c.Handler(), "/livez"); code != 200 {
			t.Errorf("livez %d with Redis down, want 200 (process only)", code)
		}
	})
}

// With several partitions /health reports each one and their totals, a
// stalled loop of one partition makes the replica unhealthy, and /metrics
// carries a gauge per partition.
func TestHealthPerPartition(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	k := store.NewKeys("metrics")
	var parts []health.Partition
	for p := range 3 {
		s := k.Stream(p)
		streamtest.EnsureGroup(t, rdb, "metrics", p, "g")
		for range p + 1 { // partition p: p+1 entries, one delivered
			streamtest.Add(t, rdb, s, streamtest.Metric("cpu", 1, 1))
		}
		if err := rdb.XReadGroup(ctx, readArgs(s)).Err(); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, health.Partition{Index: p, Stream: s, Group: streamtest.Group(t, rdb, "metrics", p, "g"), Loop: loop{beat: time.Now()}})
	}
	m := telemetry.New()
	c, err := health.New(streamtest.Store(t, rdb, "metrics", 3), parts, health.Options{Metrics: m, RefreshInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	code, body, raw := get(t, c.Handler(), "/health")
	if code != 200 || body["pending"] != 3.0 || body["lag"] != 3.0 {
		t.Fatalf("%d %s", code, raw)
	}
	ps := body["partitions"].([]any)
	if len(ps) != 3 || ps[2].(map[string]any)["lag"] != 2.0 || ps[2].(map[string]any)["pending"] != 1.0 {
		t.Errorf("partitions %s", raw)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	streamtest.Eventually(t, 5*time.Second, func() string {
		_, _, raw := get(t, c.Handler(), "/metrics")
		for _, want := range []string{`aggregator_partition_group_lag{partition="2"} 2`, `aggregator_partition_group_pending{partition="0"} 1`, "aggregator_group_lag 3"} {
			if !strings.Contains(raw, want) {
				return "/metrics lacks " + want
			}
		}
		return ""
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	parts[1].Loop = loop{beat: time.Now().Add(-time.Minute)}
	c, _ = health.New(streamtest.Store(t, rdb, "metrics", 3), parts, health.Options{})
	code, body, raw = get(t, c.Handler(), "/health")
	if code != 503 || !strings.Contains(body["checks"].(map[string]any)["consumer"].(string), "partition 1") {
		t.Errorf("one stalled partition: %d %s", code, raw)
	}
}

// internalText returns the first piece of internal error text found in
// body: an address or port of the Redis at url, or Go error wording.
func internalText(body, url string) string {
	addr := strings.TrimPrefix(url, "redis://")
	_, port, _ := strings.Cut(addr, ":")
	for _, s := range []string{"127.0.0.1", addr, ":" + port, "dial tcp", "connection refused", "i/o timeout", "EOF", "context deadline"} {
		if s != "" && s != ":" && strings.Contains(body, s) {
			return s
		}
	}
	return ""
}

// A group Redis cannot report (here: its stream does not exist) is named
// in plain words, without Redis' reply.
func TestHealthGroupFailureInPlainWords(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	c := newChecker(t, rdb, "nostream", loop{beat: time.Now()})
	code, body, raw := get(t, c.Handler(), "/health")
	if code != 503 {
		t.Fatalf("%d %s", code, raw)
	}
	redis := body["checks"].(map[string]any)["redis"].(string)
	if redis != "partition 0: consumer group missing" || strings.Contains(raw, "ERR") || strings.Contains(raw, "no such key") {
		t.Errorf("checks.redis %q in %s", redis, raw)
	}
}
