package apply_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/internal/apply"
	"github.com/resilientanalytics/ra/services/aggregator/internal/streamtest"
	"github.com/resilientanalytics/ra/services/aggregator/internal/telemetry"
)

const group = "aggregators"

type fixture struct {
	rdb    *redis.Client
	k      store.Keys
	stream string
	a      *apply.Applier
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	k := store.NewKeys("metrics")
	f := fixture{rdb: rdb, k: k, stream: k.Stream(0)}
	if err := rdb.XGroupCreateMkStream(context.Background(), f.stream, group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	a, err := apply.New(streamtest.Group(t, rdb, k.Family(), 0, group), apply.Options{Consumer: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	f.a = a
	return f
}

// read delivers up to n new entries to consumer.
func (f fixture) read(t *testing.T, consumer string, n int64) []store.Entry {
	t.Helper()
	res, err := f.rdb.XReadGroup(context.Background(), &redis.XReadGroupArgs{
		Group: group, Consumer: consumer, Streams: []string{f.stream, ">"}, Count: n, Block: -1,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return streamtest.Entries(res[0].Messages)
}

func TestSameEntryTwiceCountsOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	streamtest.Add(t, f.rdb, f.stream, streamtest.Metric("cpu", 10, 100), streamtest.Metric("cpu", 20, 200))
	msgs := f.read(t, "c1", 10)

	r1, err := f.a.Apply(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := f.a.Apply(ctx, msgs) // a redelivery, e.g. after a crash before the reply
	if err != nil {
		t.Fatal(err)
	}
	if r1.Applied != 2 || r1.Duplicates != 0 || r2.Applied != 0 || r2.Duplicates != 2 {
		t.Errorf("first %+v, second %+v; want 2 applied then 2 duplicates", r1, r2)
	}
	got, _ := streamtest.Summary(t, f.rdb, f.k, "cpu")
	if got.Count != 2 || got.Sum != 30 {
		t.Errorf("summary %+v, want count 2 sum 30", got)
	}
}

func TestConcurrentAppliesOfOneBatchCountOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var want streamtest.Expect = streamtest.Expect{}
	var ms []metric.Metric
	for i := range 200 {
		ms = append(ms, streamtest.Metric([]string{"a", "b", "c"}[i%3], float64(i), int64(1000+i)))
	}
	want.Add(ms...)
	streamtest.Add(t, f.rdb, f.stream, ms...)
	msgs := f.read(t, "c1", 1000)

	// Eight replicas race on the same entries (as after concurrent claims).
	var wg sync.WaitGroup
	results := make([]apply.Result, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = f.a.Apply(ctx, msgs)
		}()
	}
	wg.Wait()
	applied := 0
	for i := range 8 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		applied += results[i].Applied
	}
	if applied != 200 {
		t.Errorf("applied %d in total, want 200", applied)
	}
	if d := want.Diff(t, f.rdb, f.k); d != "" {
		t.Error(d)
	}
}

func TestFoldsSummaryAcrossBatches(t *testing.T) {
	tests := []struct {
		name    string
		batches [][]metric.Metric
	}{
		{"one entry", [][]metric.Metric{{streamtest.Metric("t", 5, 10)}}},
		{"negative and fractional", [][]metric.Metric{{streamtest.Metric("t", -2.5, 30), streamtest.Metric("t", 0.125, 10)}}},
		{"older entry in a later batch lowers first_ts and min", [][]metric.Metric{
			{streamtest.Metric("t", 7, 50), streamtest.Metric("t", 9, 60)},
			{streamtest.Metric("t", 1, 20), streamtest.Metric("t", 100, 40)},
		}},
		{"several types in one batch", [][]metric.Metric{
			{streamtest.Metric("x", 1, 1), streamtest.Metric("y", 2, 2), streamtest.Metric("x", 3, 3)},
			{streamtest.Metric("y", -4, 4)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			want := streamtest.Expect{}
			for _, b := range tt.batches {
				want.Add(b...)
				streamtest.Add(t, f.rdb, f.stream, b...)
				if _, err := f.a.Apply(context.Background(), f.read(t, "c1", 100)); err != nil {
					t.Fatal(err)
				}
			}
			if d := want.Diff(t, f.rdb, f.k); d != "" {
				t.Error(d)
			}
		})
	}
}

func TestFullFloatPrecisionAndIntegerFields(t *testing.T) {
	f := newFixture(t)
	v := 0.1 + 0.2 // 0.30000000000000004 needs 17 digits
	m := streamtest.Metric("p", v, 1771149600)
	streamtest.Add(t, f.rdb, f.stream, m)
	if _, err := f.a.Apply(context.Background(), f.read(t, "c1", 1)); err != nil {
		t.Fatal(err)
	}
	h := f.rdb.HGetAll(context.Background(), f.k.Summary(0, "p")).Val()
	if h[store.SummaryCount] != "1" || h[store.SummaryFirstTS] != "1771149600000000" || h[store.SummaryLastTS] != "1771149600000000" {
		t.Errorf("integer fields not written as integers: %v", h)
	}
	got, _ := streamtest.Summary(t, f.rdb, f.k, "p")
	if got.Sum != v || got.Min != v || got.Max != v {
		t.Errorf("precision lost: %+v, want %v", got, v)
	}
}

func TestUndecodableEntryIsDeadLetteredAndAcked(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	streamtest.Add(t, f.rdb, f.stream, streamtest.Metric("cpu", 1, 1))
	badID := streamtest.AddRaw(t, f.rdb, f.stream, "type", "cpu", "value", "NaN", "ts", "5")
	noType := streamtest.AddRaw(t, f.rdb, f.stream, "value", "3", "ts", "5")
	streamtest.Add(t, f.rdb, f.stream, streamtest.Metric("cpu", 2, 2))

	res, err := f.a.Apply(ctx, f.read(t, "c1", 10))
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 2 || res.DeadLettered != 2 {
		t.Errorf("result %+v, want 2 applied and 2 dead-lettered", res)
	}
	if n := streamtest.Pending(t, f.rdb, f.stream, group); n != 0 {
		t.Errorf("pending = %d, want 0 (dead letters are acknowledged)", n)
	}
	got, _ := streamtest.Summary(t, f.rdb, f.k, "cpu")
	if got.Count != 2 || got.Sum != 3 {
		t.Errorf("summary %+v, want only the two valid entries", got)
	}
	dead := f.rdb.XRange(ctx, f.k.Dead(0), "-", "+").Val()
	if len(dead) != 2 {
		t.Fatalf("dead stream has %d entries, want 2", len(dead))
	}
	d0 := dead[0].Values
	if d0["dlq_source_id"] != badID || d0["value"] != "NaN" || d0["type"] != "cpu" || d0["ts"] != "5" ||
		!strings.Contains(d0["dlq_reason"].(string), "value") || d0["dlq_consumer"] != "c1" {
		t.Errorf("dead letter lacks reason or original fields: %v", d0)
	}
	if dead[1].Values["dlq_source_id"] != noType || !strings.Contains(dead[1].Values["dlq_reason"].(string), "type") {
		t.Errorf("second dead letter: %v", dead[1].Values)
	}

	// Dead-lettering again (a redelivery) adds nothing.
	n, err := f.a.DeadLetter(ctx, []apply.Dead{{Entry: store.Entry{ID: badID, Values: map[string]any{"x": "1"}}, Reason: "again", Class: apply.ReasonDecode}})
	if err != nil || n != 0 {
		t.Errorf("second dead-letter moved %d (err %v), want 0", n, err)
	}
	if l := f.rdb.XLen(ctx, f.k.Dead(0)).Val(); l != 2 {
		t.Errorf("dead stream length %d after redelivery, want 2", l)
	}
}

func TestScriptCacheFlushIsHandled(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	streamtest.Add(t, f.rdb, f.stream, streamtest.Metric("cpu", 1, 1))
	if _, err := f.a.Apply(ctx, f.read(t, "c1", 10)); err != nil {
		t.Fatal(err)
	}
	// As after a Redis restart: the script cache is empty, EVALSHA fails
	// with NOSCRIPT and Script.Run falls back to EVAL.
	if err := f.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	streamtest.Add(t, f.rdb, f.stream, streamtest.Metric("cpu", 2, 2))
	streamtest.AddRaw(t, f.rdb, f.stream, "junk", "1")
	res, err := f.a.Apply(ctx, f.read(t, "c1", 10))
	if err != nil {
		t.Fatalf("apply after SCRIPT FLUSH: %v", err)
	}
	if res.Applied != 1 || res.DeadLettered != 1 {
		t.Errorf("result %+v", res)
	}
}

// A corrupt summary of one type never stops the others: batch after batch
// the good types are counted, the corrupt type's entries go to the dead
// letters with the reason, and nothing is left pending.
func TestCorruptSummaryDeadLettersOnlyItsType(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.rdb.HSet(ctx, f.k.Summary(0, "bad"), store.SummaryCount, "x", store.SummarySum, "1")
	want := streamtest.Expect{}
	badIDs := map[string]bool{}
	for b := range 3 {
		good := []metric.Metric{streamtest.Metric("good", float64(b), int64(10*b+1)), streamtest.Metric("also_good", 1, int64(10*b+2))}
		want.Add(good...)
		streamtest.Add(t, f.rdb, f.stream, good[0])
		for _, id := range streamtest.Add(t, f.rdb, f.stream, streamtest.Metric("bad", 1, int64(10*b+3))) {
			badIDs[id] = true
		}
		streamtest.Add(t, f.rdb, f.stream, good[1])
		res, err := f.a.Apply(ctx, f.read(t, "c1", 10))
		if err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
		if res.Applied != 2 || res.DeadLettered != 1 {
			t.Fatalf("batch %d: %+v, want 2 applied and 1 dead-lettered", b, res)
		}
	}
	if d := want.Diff(t, f.rdb, f.k); d != "" {
		t.Error(d)
	}
	if n := streamtest.Pending(t, f.rdb, f.stream, group); n != 0 {
		t.Errorf("pending = %d, want 0", n)
	}
	dead := f.rdb.XRange(ctx, f.k.Dead(0), "-", "+").Val()
	if len(dead) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dead))
	}
	for _, d := range dead {
		if !badIDs[d.Values["dlq_source_id"].(string)] || !strings.Contains(d.Values["dlq_reason"].(string), "is corrupt") || d.Values["type"] != "bad" {
			t.Errorf("dead letter %v: want a bad entry with the reason", d.Values)
		}
	}
	if h := f.rdb.HGetAll(ctx, f.k.Summary(0, "bad")).Val(); h[store.SummaryCount] != "x" {
		t.Errorf("the corrupt summary was written: %v", h)
	}
}

// Two values of 1.7e308 written straight to the stream (past the api's
// bound): the second would make the sum inf, so it is dead-lettered and
// counted as non_finite; the first and the other types are applied, and
// nothing non-finite is ever written.
func TestSumOverflowIsDeadLetteredNotWritten(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	k := store.NewKeys("metrics")
	stream := k.Stream(0)
	ctx := context.Background()
	streamtest.EnsureGroup(t, rdb, "metrics", 0, group)
	m := telemetry.New()
	a, err := apply.New(streamtest.Group(t, rdb, "metrics", 0, group), apply.Options{Consumer: "c1", Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	streamtest.AddRaw(t, rdb, stream, "type", "cpu_usage", "value", "1.7e308", "ts", "1771149600000000")
	streamtest.Add(t, rdb, stream, streamtest.Metric("mem", 3, 1771149600))
	overflow := streamtest.AddRaw(t, rdb, stream, "type", "cpu_usage", "value", "1.7e308", "ts", "1771149601000000")
	f := fixture{rdb: rdb, k: k, stream: stream, a: a}
	res, err := a.Apply(ctx, f.read(t, "c1", 10))
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != 2 || res.DeadLettered != 1 {
		t.Fatalf("%+v, want 2 applied and 1 dead-lettered", res)
	}
	cpu, _ := streamtest.Summary(t, rdb, k, "cpu_usage")
	if cpu.Count != 1 || cpu.Sum != 1.7e308 {
		t.Errorf("cpu_usage %+v, want the first value only", cpu)
	}
	if mem, _ := streamtest.Summary(t, rdb, k, "mem"); mem.Count != 1 {
		t.Errorf("mem %+v, want it applied", mem)
	}
	dead := rdb.XRange(ctx, k.Dead(0), "-", "+").Val()
	if len(dead) != 1 || dead[0].Values["dlq_source_id"] != overflow || !strings.Contains(dead[0].Values["dlq_reason"].(string), "overflow") {
		t.Fatalf("dead letters %v, want the overflowing entry with its reason", dead)
	}
	if got := testutil.ToFloat64(m.DeadLettered.WithLabelValues(apply.ReasonNonFinite)); got != 1 {
		t.Errorf("dead_lettered_total{class=non_finite} = %v, want 1", got)
	}
	if n := streamtest.Pending(t, rdb, stream, group); n != 0 {
		t.Errorf("pending = %d, want 0", n)
	}
}
