package consumer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/internal/apply"
	"github.com/resilientanalytics/ra/services/aggregator/internal/consumer"
	"github.com/resilientanalytics/ra/services/aggregator/internal/streamtest"
)

const group = "aggregators"

type fixture struct {
	rdb    *redis.Client         // the test's own client, for setup and assertions
	svc    redis.UniversalClient // the aggregator's client (no retries)
	k      store.Keys
	stream string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	srv := redistest.Start(t)
	k := store.NewKeys("metrics")
	return fixture{rdb: srv.Client(t), svc: streamtest.ServiceClient(t, srv.URL()), k: k, stream: k.Stream(0)}
}

func (f fixture) consumer(t *testing.T, name string, opts consumer.Options) *consumer.Consumer {
	t.Helper()
	g := streamtest.Group(t, f.svc, f.k.Family(), 0, group)
	a, err := apply.New(g, apply.Options{Consumer: name})
	if err != nil {
		t.Fatal(err)
	}
	opts.Group, opts.Name = group, name
	opts.Logger = streamtest.Logger(t)
	if opts.Block == 0 {
		opts.Block = 100 * time.Millisecond
	}
	c, err := consumer.New(g, a, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// start runs c until the test ends; the returned func stops it and reports
// Run's error.
func start(t *testing.T, c *consumer.Consumer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var stopped bool
	var err error
	stop = func() error {
		if !stopped {
			cancel()
			err = <-done
			stopped = true
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func metrics(n int, types ...string) []metric.Metric {
	out := make([]metric.Metric, n)
	for i := range out {
		out[i] = streamtest.Metric(types[i%len(types)], float64(i%100), int64(1_700_000_000+i))
	}
	return out
}

func TestEntriesWrittenBeforeFirstStartAreCounted(t *testing.T) {
	f := newFixture(t)
	ms := metrics(1000, "cpu", "mem", "disk")
	streamtest.Add(t, f.rdb, f.stream, ms...) // no group exists yet
	want := streamtest.Expect{}
	want.Add(ms...)

	stop := start(t, f.consumer(t, "c1", consumer.Options{BatchSize: 64}))
	streamtest.Eventually(t, 10*time.Second, func() string { return want.Diff(t, f.rdb, f.k) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := streamtest.Pending(t, f.rdb, f.stream, group); n != 0 {
		t.Errorf("pending = %d", n)
	}
}

func TestExistingGroupIsKept(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old := metrics(10, "cpu")
	streamtest.Add(t, f.rdb, f.stream, old...)
	// The group already consumed everything up to now ($): the consumer
	// must not reset it to 0 and count those entries again.
	if err := f.rdb.XGroupCreateMkStream(ctx, f.stream, group, "$").Err(); err != nil {
		t.Fatal(err)
	}
	fresh := metrics(5, "cpu")
	streamtest.Add(t, f.rdb, f.stream, fresh...)
	want := streamtest.Expect{}
	want.Add(fresh...)
	start(t, f.consumer(t, "c1", consumer.Options{}))
	streamtest.Eventually(t, 10*time.Second, func() string { return want.Diff(t, f.rdb, f.k) })
}

func TestOwnPendingEntriesAreReadFirst(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ms := metrics(300, "cpu", "mem")
	streamtest.Add(t, f.rdb, f.stream, ms...)
	want := streamtest.Expect{}
	want.Add(ms...)
	streamtest.EnsureGroup(t, f.rdb, f.k.Family(), 0, group)
	// A previous run of "c1" read 200 entries and died before applying them.
	if err := f.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "c1", Streams: []string{f.stream, ">"}, Count: 200, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
	start(t, f.consumer(t, "c1", consumer.Options{BatchSize: 50}))
	streamtest.Eventually(t, 10*time.Second, func() string {
		if d := want.Diff(t, f.rdb, f.k); d != "" {
			return d
		}
		if n := streamtest.Pending(t, f.rdb, f.stream, group); n != 0 {
			return fmt.Sprintf("pending = %d", n)
		}
		return ""
	})
}

func TestOwnPendingPastMaxDeliveriesIsDeadLettered(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	poison := streamtest.Add(t, f.rdb, f.stream, streamtest.Metric("cpu", 1, 1))[0]
	streamtest.EnsureGroup(t, f.rdb, f.k.Family(), 0, group)
	// Three earlier runs of "c1" read it and crashed (each re-read from id 0
	// raises the delivery count).
	for _, id := range []string{">", "0", "0"} {
		if err := f.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "c1", Streams: []string{f.stream, id}, Count: 10, Block: -1}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	good := metrics(3, "mem")
	streamtest.Add(t, f.rdb, f.stream, good...)
	want := streamtest.Expect{}
	want.Add(good...)
	start(t, f.consumer(t, "c1", consumer.Options{MaxDeliveries: 3})) // its re-read is the 4th delivery
	streamtest.Eventually(t, 10*time.Second, func() string {
		if l := f.rdb.XLen(ctx, f.k.Dead(0)).Val(); l != 1 {
			return fmt.Sprintf("dead letters = %d, want 1", l)
		}
		return want.Diff(t, f.rdb, f.k)
	})
	d := f.rdb.XRange(ctx, f.k.Dead(0), "-", "+").Val()[0].Values
	if d["dlq_source_id"] != poison || !strings.Contains(d["dlq_reason"].(string), "AGG_MAX_DELIVERIES=3") || d["type"] != "cpu" {
		t.Errorf("dead letter %v", d)
	}
	if _, ok := streamtest.Summary(t, f.rdb, f.k, "cpu"); ok {
		t.Error("the dead-lettered entry was also folded")
	}
}

func TestLeaveOnlyWithoutPendingEntries(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	streamtest.Add(t, f.rdb, f.stream, metrics(2, "cpu")...)
	streamtest.EnsureGroup(t, f.rdb, f.k.Family(), 0, group)
	if err := f.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "c1", Streams: []string{f.stream, ">"}, Count: 1, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
	c := f.consumer(t, "c1", consumer.Options{})
	left, err := c.Leave(ctx)
	if err != nil || left {
		t.Fatalf("Leave with a pending entry = %v, %v; want kept", left, err)
	}
	if n := streamtest.Pending(t, f.rdb, f.stream, group); n != 1 {
		t.Errorf("pending = %d after Leave, want 1 (still claimable)", n)
	}
	stop := start(t, c)
	streamtest.Eventually(t, 10*time.Second, func() string {
		if n := streamtest.Pending(t, f.rdb, f.stream, group); n != 0 {
			return fmt.Sprintf("pending = %d", n)
		}
		return ""
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if left, err := c.Leave(ctx); err != nil || !left {
		t.Fatalf("Leave without pending = %v, %v; want deleted", left, err)
	}
	cs := f.rdb.XInfoConsumers(ctx, f.stream, group).Val()
	if len(cs) != 0 {
		t.Errorf("consumers after Leave: %+v", cs)
	}
}

func TestSurvivesRedisOutageAndScriptCacheLoss(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{AOF: true, Args: []string{"--appendfsync", "always"}})
	srv.RequireReal(t)
	k := store.NewKeys("metrics")
	f := fixture{rdb: srv.Client(t), svc: streamtest.ServiceClient(t, srv.URL()), k: k, stream: k.Stream(0)}
	want := streamtest.Expect{}
	first := metrics(500, "cpu", "mem")
	want.Add(first...)
	streamtest.Add(t, f.rdb, f.stream, first...)

	c := f.consumer(t, "c1", consumer.Options{BatchSize: 20})
	start(t, c)
	streamtest.Eventually(t, 10*time.Second, func() string {
		if c.LastBatch().IsZero() {
			return "no batch applied yet"
		}
		return ""
	})
	srv.Kill(t)
	time.Sleep(300 * time.Millisecond) // the loop fails and backs off meanwhile
	srv.Restart(t)
	second := metrics(500, "cpu", "mem", "disk")
	want.Add(second...)
	streamtest.Add(t, f.rdb, f.stream, second...)
	streamtest.Eventually(t, 20*time.Second, func() string {
		if d := want.Diff(t, f.rdb, f.k); d != "" {
			return fmt.Sprintf("%s (pending %v, dead %d, len %d)", d, f.rdb.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: f.stream, Group: group, Start: "-", End: "+", Count: 3}).Val(),
				f.rdb.XLen(context.Background(), f.k.Dead(0)).Val(), f.rdb.XLen(context.Background(), f.stream).Val())
		}
		if n := streamtest.Pending(t, f.rdb, f.stream, group); n != 0 {
			return fmt.Sprintf("pending = %d", n)
		}
		return ""
	})
}

func TestBatchReadAtShutdownIsApplied(t *testing.T) {
	f := newFixture(t)
	// A long BLOCK: cancel while the read waits, then add entries (in one
	// transaction, so the read returns all of them); the read returns them
	// after the cancel and they must still be applied.
	c := f.consumer(t, "c1", consumer.Options{Block: 1500 * time.Millisecond})
	stop := start(t, c)
	streamtest.Eventually(t, 5*time.Second, func() string {
		if n := f.rdb.XInfoConsumers(context.Background(), f.stream, group).Val(); len(n) == 0 {
			return "consumer not registered yet"
		}
		return ""
	})
	time.Sleep(100 * time.Millisecond) // let it enter the blocking read
	ms := metrics(5, "cpu")
	want := streamtest.Expect{}
	want.Add(ms...)
	errc := make(chan error, 1)
	go func() { errc <- stop() }()
	time.Sleep(50 * time.Millisecond)
	if _, err := f.rdb.TxPipelined(context.Background(), func(p redis.Pipeliner) error {
		for _, m := range ms {
			p.XAdd(context.Background(), &redis.XAddArgs{Stream: f.stream, Values: store.EntryFields(m)})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n := streamtest.Pending(t, f.rdb, f.stream, group); n != 0 {
		t.Errorf("pending = %d after shutdown: the batch in hand was not applied", n)
	}
	if d := want.Diff(t, f.rdb, f.k); d != "" {
		t.Error(d)
	}
}
