package apply_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/internal/apply"
	"github.com/resilientanalytics/ra/services/aggregator/internal/streamtest"
)

// BenchmarkApply measures one apply.lua call per batch of 256 delivered
// entries (4 types): the Go side decodes and builds the arguments, Redis
// acknowledges and folds. Filling and delivering each batch is not timed.
// Its event times are in February 2026, older than the bucket retention,
// so it measures the summary fold alone; BenchmarkApplyBucketed adds the
// per-minute buckets.
func BenchmarkApply(b *testing.B) {
	benchApply(b, 1_771_000_000)
}

// BenchmarkApplyBucketed is BenchmarkApply with event times of the last
// hours, one second apart (a batch spans ~4 minutes of 4 types, ~20 bucket
// minutes in 4-8 hour hashes): every entry is also bucketed.
func BenchmarkApplyBucketed(b *testing.B) {
	benchApply(b, time.Now().Add(-2*time.Hour).Unix())
}

func benchApply(b *testing.B, firstSec int64) {
	const batch = 256
	srv := redistest.Start(b)
	rdb := streamtest.ServiceClient(b, srv.URL())
	ctx := context.Background()
	k := store.NewKeys("bench")
	stream := k.Stream(0)
	if err := rdb.XGroupCreateMkStream(ctx, stream, group, "0").Err(); err != nil {
		b.Fatal(err)
	}
	a, err := apply.New(streamtest.Group(b, rdb, k.Family(), 0, group), apply.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ms := make([]metric.Metric, batch)
	for i := range ms {
		ms[i] = streamtest.Metric([]string{"cpu", "mem", "disk", "net"}[i%4], float64(i), firstSec+int64(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		streamtest.Add(b, rdb, stream, ms...)
		res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "c", Streams: []string{stream, ">"}, Count: batch, Block: -1}).Result()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		r, err := a.Apply(ctx, streamtest.Entries(res[0].Messages))
		if err != nil || r.Applied != batch {
			b.Fatalf("apply: %+v, %v", r, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
}
