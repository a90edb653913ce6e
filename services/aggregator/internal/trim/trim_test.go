package trim_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/internal/streamtest"
	"github.com/resilientanalytics/ra/services/aggregator/internal/trim"
)

func setup(t *testing.T) (*redis.Client, string) {
	t.Helper()
	srv := redistest.Start(t)
	return srv.Client(t), store.NewKeys("metrics").Stream(0)
}

func add(t *testing.T, rdb *redis.Client, stream string, n int) []string {
	t.Helper()
	ms := make([]metric.Metric, n)
	for i := range ms {
		ms[i] = streamtest.Metric("cpu", 1, int64(i))
	}
	return streamtest.Add(t, rdb, stream, ms...)
}

func read(t *testing.T, rdb *redis.Client, stream, group, consumer string, n int64) {
	t.Helper()
	if err := rdb.XReadGroup(context.Background(), &redis.XReadGroupArgs{Group: group, Consumer: consumer,
		Streams: []string{stream, ">"}, Count: n, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
}

// newTrimmer trims the stream of partition p of family "metrics".
func newTrimmer(t *testing.T, rdb *redis.Client, p int, retention time.Duration) *trim.Trimmer {
	t.Helper()
	tr, err := trim.New(streamtest.Store(t, rdb, "metrics", p+1), trim.Options{Partition: p, Retention: retention})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestNeverTrimsPendingOrUndeliveredEntries(t *testing.T) {
	rdb, stream := setup(t)
	ctx := context.Background()
	ids := add(t, rdb, stream, 30)
	rdb.XGroupCreate(ctx, stream, "g", "0")
	read(t, rdb, stream, "g", "c", 10)
	rdb.XAck(ctx, stream, "g", ids[:10]...) // 0..9 processed
	read(t, rdb, stream, "g", "c", 10)      // 10..19 pending, 20..29 undelivered

	n, minID, err := newTrimmer(t, rdb, 0, 0).Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 10 || minID != ids[10] {
		t.Errorf("trimmed %d below %q, want 10 below the oldest pending %s", n, minID, ids[10])
	}
	if first := rdb.XRangeN(ctx, stream, "-", "+", 1).Val(); first[0].ID != ids[10] {
		t.Errorf("first entry %s, want %s", first[0].ID, ids[10])
	}

	// Everything delivered and acknowledged: trimmed up to the last one
	// delivered, undelivered entries stay.
	rdb.XAck(ctx, stream, "g", ids[10:20]...)
	if n, _, err := newTrimmer(t, rdb, 0, 0).Once(ctx); err != nil || n != 10 {
		t.Errorf("second trim removed %d (err %v), want 10", n, err)
	}
	if l := rdb.XLen(ctx, stream).Val(); l != 10 {
		t.Errorf("len %d, want the 10 undelivered entries", l)
	}
}

func TestSlowestGroupBoundsTheTrim(t *testing.T) {
	rdb, stream := setup(t)
	ctx := context.Background()
	ids := add(t, rdb, stream, 20)
	rdb.XGroupCreate(ctx, stream, "fast", "0")
	rdb.XGroupCreate(ctx, stream, "slow", "0")
	read(t, rdb, stream, "fast", "c", 20)
	rdb.XAck(ctx, stream, "fast", ids...)
	read(t, rdb, stream, "slow", "c", 5)
	rdb.XAck(ctx, stream, "slow", ids[:5]...)

	n, _, err := newTrimmer(t, rdb, 0, 0).Once(ctx)
	if err != nil || n != 5 {
		t.Errorf("trimmed %d (err %v), want 5: the slow group has delivered only 5", n, err)
	}
}

func TestRetentionAndNoGroupKeepEverything(t *testing.T) {
	rdb, stream := setup(t)
	ctx := context.Background()
	ids := add(t, rdb, stream, 10)
	if n, _, err := newTrimmer(t, rdb, 0, 0).Once(ctx); err != nil || n != 0 {
		t.Errorf("without a group trimmed %d (err %v), want 0", n, err)
	}
	rdb.XGroupCreate(ctx, stream, "g", "0")
	read(t, rdb, stream, "g", "c", 10)
	rdb.XAck(ctx, stream, "g", ids...)
	if n, _, err := newTrimmer(t, rdb, 0, time.Hour).Once(ctx); err != nil || n != 0 {
		t.Errorf("within retention trimmed %d (err %v), want 0", n, err)
	}
	if n, _, err := newTrimmer(t, rdb, 0, 0).Once(ctx); err != nil || n != 10 {
		t.Errorf("past retention trimmed %d (err %v), want 10", n, err)
	}
	if n, _, err := newTrimmer(t, rdb, 9, 0).Once(ctx); err != nil || n != 0 {
		t.Errorf("missing stream: %d, %v", n, err)
	}
}
