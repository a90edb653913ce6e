package main_test

import (
	"context"
	"github.com/redis/go-redis/v9"
	"syscall"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/internal/streamtest"
)

// TestBucketsExactlyOnceUnderSIGKILL is TestCrashSafetySIGKILL for the
// per-minute buckets: metrics with event times over the last three hours,
// two replicas, one SIGKILLed mid-stream with a batch in hand, a third
// started. Afterwards every minute of every type holds exactly the count,
// sum, min and max of the metrics written for it, and the types set lists
// each type with its latest event time.
func TestBucketsExactlyOnceUnderSIGKILL(t *testing.T) {
	srv := redistest.Start(t)
	srv.RequireReal(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	k := store.NewKeys(store.DefaultFamily)
	const n = 12_000
	types := []string{"cpu_usage", "memory", "disk.io", "net:rx"}
	end := time.Now().UTC().Truncate(time.Minute)
	start := end.Add(-3 * time.Hour)
	ms := make([]metric.Metric, n)
	for i := range ms {
		// Spread over 180 minutes, several types per minute; small integer
		// values keep every sum exact.
		ts := start.Add(time.Duration(i*7919%(180*60)) * time.Second)
		ms[i] = metric.Metric{Type: types[i%len(types)], Value: float64(i % 97), Timestamp: ts}
	}
	want := streamtest.Expect{}
	want.Add(ms...)

	small := "AGG_BATCH_SIZE=50"
	a := startAgg(t, srv.URL(), "replica-a", small)
	startAgg(t, srv.URL(), "replica-b", small)
	const chunk = 200
	for off := 0; off < n; off += chunk {
		if off == n/3 {
			streamtest.Add(t, rdb, k.Stream(0), ms[off:off+2000]...)
			off += 2000 - chunk
			time.Sleep(2 * time.Millisecond)
			if code := a.stop(t, syscall.SIGKILL); code != -1 {
				t.Fatalf("replica-a exit code %d after SIGKILL", code)
			}
			owned := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: k.Stream(0), Group: group,
				Start: "-", End: "+", Count: 1000, Consumer: "replica-a"}).Val()
			t.Logf("replica-a died owning %d pending entries", len(owned))
			continue
		}
		streamtest.Add(t, rdb, k.Stream(0), ms[off:off+chunk]...)
		if off == 2*n/3 {
			startAgg(t, srv.URL(), "replica-c", small)
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitExact(t, rdb, k, want, 30*time.Second)

	r, err := store.New(rdb, k.Family(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range types {
		wantCells := make([]store.Cell, 180)
		var last time.Time
		for _, m := range ms {
			if m.Type == typ {
				i := int(m.Timestamp.Sub(start) / time.Minute)
				wantCells[i] = wantCells[i].Merge(store.Of(m.Value))
				if m.Timestamp.After(last) {
					last = m.Timestamp
				}
			}
		}
		got, err := r.Minutes(ctx, typ, start.UnixMicro(), end.UnixMicro())
		if err != nil {
			t.Fatal(err)
		}
		for i := range wantCells {
			if got[i] != wantCells[i] {
				t.Fatalf("%s minute %s: %+v, want %+v", typ, start.Add(time.Duration(i)*time.Minute).Format(time.TimeOnly), got[i], wantCells[i])
			}
		}
		if s := rdb.ZScore(ctx, k.Types(0), typ).Val(); s != float64(last.UnixMicro()) {
			t.Errorf("types: %s last seen %v, want %v", typ, s, last.UnixMicro())
		}
	}
	if total := store.Total(mustMinutes(t, r, "cpu_usage", start, end)); total.Count != want["cpu_usage"].Count {
		t.Errorf("cpu_usage buckets count %d, summary %d", total.Count, want["cpu_usage"].Count)
	}
}

func mustMinutes(t *testing.T, r *store.Store, typ string, from, to time.Time) []store.Cell {
	t.Helper()
	c, err := r.Minutes(context.Background(), typ, from.UnixMicro(), to.UnixMicro())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
