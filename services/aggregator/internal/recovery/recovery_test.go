package recovery_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/internal/apply"
	"github.com/resilientanalytics/ra/services/aggregator/internal/recovery"
	"github.com/resilientanalytics/ra/services/aggregator/internal/streamtest"
)

const (
	group   = "aggregators"
	minIdle = 300 * time.Millisecond
)

type fixture struct {
	rdb    *redis.Client
	k      store.Keys
	stream string
	a      *apply.Applier
	r      *recovery.Reclaimer
}

func newFixture(t *testing.T, maxDeliveries int64) fixture {
	t.Helper()
	srv := redistest.Start(t)
	svc := streamtest.ServiceClient(t, srv.URL())
	k := store.NewKeys("metrics")
	f := fixture{rdb: srv.Client(t), k: k, stream: k.Stream(0)}
	streamtest.EnsureGroup(t, f.rdb, k.Family(), 0, group)
	g := streamtest.Group(t, svc, k.Family(), 0, group)
	var err error
	if f.a, err = apply.New(g, apply.Options{Consumer: "rescuer"}); err != nil {
		t.Fatal(err)
	}
	f.r, err = recovery.New(g, f.a, recovery.Options{
		Consumer: "rescuer", MinIdle: minIdle,
		MaxDeliveries: maxDeliveries, BatchSize: 7, Logger: streamtest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// deliver hands up to n new entries to consumer (which then "dies").
func (f fixture) deliver(t *testing.T, consumer string, n int64) []store.Entry {
	t.Helper()
	res, err := f.rdb.XReadGroup(context.Background(), &redis.XReadGroupArgs{
		Group: group, Consumer: consumer, Streams: []string{f.stream, ">"}, Count: n, Block: -1,
	}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return streamtest.Entries(res[0].Messages)
}

func TestPendingEntryOfDeadConsumerIsReclaimedAfterMinIdle(t *testing.T) {
	f := newFixture(t, 10)
	ctx := context.Background()
	var ms []metric.Metric
	for i := range 20 { // more than one XPENDING page (BatchSize 7)
		ms = append(ms, streamtest.Metric([]string{"cpu", "mem"}[i%2], float64(i), int64(100+i)))
	}
	streamtest.Add(t, f.rdb, f.stream, ms...)
	want := streamtest.Expect{}
	want.Add(ms...)
	f.deliver(t, "dead-replica", 100)

	res, err := f.r.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Claimed != 0 {
		t.Fatalf("claimed %d entries before they were idle for %s", res.Claimed, minIdle)
	}
	time.Sleep(minIdle + 50*time.Millisecond)
	res, err = f.r.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Claimed != 20 || res.Applied != 20 {
		t.Errorf("result %+v, want 20 claimed and applied", res)
	}
	if d := want.Diff(t, f.rdb, f.k); d != "" {
		t.Error(d)
	}
	if n := streamtest.Pending(t, f.rdb, f.stream, group); n != 0 {
		t.Errorf("pending = %d", n)
	}
}

func TestSlowConsumerFinishingLateCountsNothingTwice(t *testing.T) {
	f := newFixture(t, 10)
	ctx := context.Background()
	ms := []metric.Metric{streamtest.Metric("cpu", 1, 1), streamtest.Metric("cpu", 2, 2)}
	streamtest.Add(t, f.rdb, f.stream, ms...)
	batch := f.deliver(t, "slow-replica", 10)
	time.Sleep(minIdle + 50*time.Millisecond)
	if _, err := f.r.Once(ctx); err != nil {
		t.Fatal(err)
	}
	// The slow replica wakes up and applies the batch it still holds.
	slow, err := apply.New(streamtest.Group(t, f.rdb, f.k.Family(), 0, group), apply.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := slow.Apply(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 0 || res.Duplicates != 2 {
		t.Errorf("slow replica result %+v, want 2 duplicates", res)
	}
	if got, _ := streamtest.Summary(t, f.rdb, f.k, "cpu"); got.Count != 2 || got.Sum != 3 {
		t.Errorf("summary %+v, want count 2 sum 3", got)
	}
}

func TestEntryPastMaxDeliveriesIsDeadLettered(t *testing.T) {
	f := newFixture(t, 3)
	ctx := context.Background()
	ids := streamtest.Add(t, f.rdb, f.stream, streamtest.Metric("cpu", 1, 1), streamtest.Metric("cpu", 2, 2))
	f.deliver(t, "crashy", 10)
	// Two more replicas claimed the first entry and crashed: 3 deliveries.
	for _, c := range []string{"crashy-2", "crashy-3"} {
		if err := f.rdb.XClaim(ctx, &redis.XClaimArgs{Stream: f.stream, Group: group, Consumer: c, Messages: ids[:1]}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(minIdle + 50*time.Millisecond)
	res, err := f.r.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.DeadLettered != 1 || res.Applied != 1 {
		t.Errorf("result %+v, want 1 dead-lettered (3 deliveries) and 1 applied (1 delivery)", res)
	}
	dead := f.rdb.XRange(ctx, f.k.Dead(0), "-", "+").Val()
	if len(dead) != 1 {
		t.Fatalf("dead letters: %v", dead)
	}
	d := dead[0].Values
	if d["dlq_source_id"] != ids[0] || !strings.Contains(d["dlq_reason"].(string), "delivered 3 times") || d["type"] != "cpu" || d["value"] != "1" {
		t.Errorf("dead letter %v", d)
	}
	if got, _ := streamtest.Summary(t, f.rdb, f.k, "cpu"); got.Count != 1 || got.Sum != 2 {
		t.Errorf("summary %+v: only the second entry belongs in it", got)
	}
	if n := streamtest.Pending(t, f.rdb, f.stream, group); n != 0 {
		t.Errorf("pending = %d", n)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	f := newFixture(t, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.r.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
