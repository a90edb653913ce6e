package apply_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/keys"
	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/services/aggregator/internal/apply"
	"github.com/resilientanalytics/ra/services/aggregator/internal/streamtest"
)

// BenchmarkApply measures one apply.lua call per batch of 256 delivered
// entries (4 types): the Go side decodes and builds the arguments, Redis
// acknowledges and folds. Filling and delivering each batch is not timed.
func BenchmarkApply(b *testing.B) {
	const batch = 256
	srv := redistest.Start(b)
	rdb := streamtest.ServiceClient(b, srv.URL())
	ctx := context.Background()
	k := keys.New("bench")
	stream := k.Stream(0)
	if err := rdb.XGroupCreateMkStream(ctx, stream, group, "0").Err(); err != nil {
		b.Fatal(err)
	}
	a, err := apply.New(rdb, k, apply.Options{Group: group})
	if err != nil {
		b.Fatal(err)
	}
	ms := make([]metric.Metric, batch)
	for i := range ms {
		ms[i] = streamtest.Metric([]string{"cpu", "mem", "disk", "net"}[i%4], float64(i), int64(1_771_000_000+i))
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
		r, err := a.Apply(ctx, res[0].Messages)
		if err != nil || r.Applied != batch {
			b.Fatalf("apply: %+v, %v", r, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
}
