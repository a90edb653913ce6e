package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
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

const (
	drainEntries = 200_000
	drainBatch   = 256
)

var drainTypes = []string{"cpu_usage", "memory", "disk.io", "net:rx"}

// BenchmarkDrain pre-fills a stream with 200,000 entries and measures:
//
//   - replay: the Redis limit for this work. replayWorkers goroutines, each
//     as its own consumer, loop XREADGROUP COUNT 256 + one apply.lua call
//     per batch as fast as Redis answers, until the stream is drained.
//   - aggregator: one consumer.Consumer (the production read loop, same
//     batch size) drains an identical stream; the clock stops when the
//     summaries reach the total (zero lag).
//
// It reports both rates in metrics/s and their ratio. Each iteration
// pre-fills fresh streams (not timed).
func BenchmarkDrain(b *testing.B) {
	// AOF on (everysec), as compose and make bench run Redis: the fold's
	// writes cost Redis AOF work too, and the limit must include it.
	srv := redistest.StartWith(b, redistest.Options{AOF: true})
	rdb := streamtest.ServiceClient(b, srv.URL())
	var replay, agg time.Duration
	for i := range b.N {
		b.StopTimer()
		rk, ak := store.NewKeys(fmt.Sprintf("replay%d", i)), store.NewKeys(fmt.Sprintf("agg%d", i))
		fill(b, rdb, rk.Stream(0))
		fill(b, rdb, ak.Stream(0))
		b.StartTimer()
		replay += runReplay(b, rdb, rk)
		agg += runAggregator(b, rdb, ak)
	}
	// What Redis spent per call (both runs together): the script and the
	// read are the whole server-side cost of a batch.
	stats := rdb.Info(context.Background(), "commandstats").Val()
	for _, line := range strings.Split(stats, "\r\n") {
		if strings.HasPrefix(line, "cmdstat_evalsha:") || strings.HasPrefix(line, "cmdstat_xreadgroup:") {
			b.Log(line)
		}
	}
	total := float64(b.N * drainEntries)
	rr, ar := total/replay.Seconds(), total/agg.Seconds()
	b.ReportMetric(rr, "replay_metrics/s")
	b.ReportMetric(ar, "agg_metrics/s")
	b.ReportMetric(ar/rr, "agg/replay")
}

func fill(b *testing.B, rdb redis.UniversalClient, stream string) {
	b.Helper()
	// Timestamps within the last hour: inside BUCKET_RETENTION, so every
	// entry is folded into its per-minute bucket too, as live traffic is.
	now := time.Now().Unix()
	ms := make([]metric.Metric, drainEntries)
	for i := range ms {
		ms[i] = streamtest.Metric(drainTypes[i%len(drainTypes)], float64(i%97), now-int64(i%3600))
	}
	streamtest.Add(b, rdb, stream, ms...)
}

// replayWorkers saturates Redis: with one worker Redis idles while Go
// decodes and while packets travel; more than a few only queue.
const replayWorkers = 4

func runReplay(b *testing.B, rdb redis.UniversalClient, k store.Keys) time.Duration {
	b.Helper()
	ctx := context.Background()
	stream := k.Stream(0)
	streamtest.EnsureGroup(b, rdb, k.Family(), 0, "replay")
	a, err := apply.New(streamtest.Group(b, rdb, k.Family(), 0, "replay"), apply.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, replayWorkers)
	for w := range replayWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("replay-%d", w)
			for {
				res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "replay", Consumer: name,
					Streams: []string{stream, ">"}, Count: drainBatch, Block: -1}).Result()
				if errors.Is(err, redis.Nil) || (err == nil && len(res[0].Messages) == 0) {
					return
				}
				if err != nil {
					errs[w] = err
					return
				}
				if _, err := a.Apply(ctx, streamtest.Entries(res[0].Messages)); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	checkTotal(b, rdb, k)
	return d
}

func runAggregator(b *testing.B, rdb redis.UniversalClient, k store.Keys) time.Duration {
	b.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := streamtest.Group(b, rdb, k.Family(), 0, "aggregators")
	a, err := apply.New(g, apply.Options{Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	c, err := consumer.New(g, a, consumer.Options{Group: "aggregators", Name: "bench",
		BatchSize: drainBatch, Block: 100 * time.Millisecond, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.Run(ctx) }()
	for counted(b, rdb, k) < drainEntries {
		time.Sleep(2 * time.Millisecond)
	}
	d := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	checkTotal(b, rdb, k)
	return d
}

func counted(b *testing.B, rdb redis.UniversalClient, k store.Keys) int64 {
	b.Helper()
	var n int64
	for _, t := range drainTypes {
		s, _ := streamtest.Summary(b, rdb, k, t)
		n += s.Count
	}
	return n
}

func checkTotal(b *testing.B, rdb redis.UniversalClient, k store.Keys) {
	b.Helper()
	if n := counted(b, rdb, k); n != drainEntries {
		b.Fatalf("summaries count %d, want %d", n, drainEntries)
	}
}
