package store_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
)

// hour0 is the start of the current hour: the tests' event times are
// minutes after it, and its buckets must not expire at once (EXPIREAT is
// the end of the hour plus the retention, on Redis' clock).
var hour0 = time.Now().UTC().Truncate(time.Hour)

func atMinute(typ string, v float64, minute int) metric.Metric {
	return metric.Metric{Type: typ, Value: v, Timestamp: hour0.Add(time.Duration(minute) * time.Minute)}
}

// deliver appends ms to partition 0's stream, reads them for consumer c of
// group g and returns them decoded, in order.
func deliver(t *testing.T, rdb *redis.Client, st *store.Store, ms ...metric.Metric) []store.Decoded {
	t.Helper()
	ctx := context.Background()
	g := st.Group(0, "g")
	if err := g.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: g.Stream(), Values: store.EntryFields(m)}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	es, err := g.Read(ctx, "c", ">", len(ms), 0)
	if err != nil || len(es) != len(ms) {
		t.Fatalf("read %d of %d: %v", len(es), len(ms), err)
	}
	out := make([]store.Decoded, len(es))
	for i, e := range es {
		m, err := store.DecodeEntry(e.Values)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = store.Decoded{ID: e.ID, Metric: m}
	}
	return out
}

// One bad hash or one overflowing value rejects exactly the entries that
// would fold into it; they stay pending, and every other entry of the
// batch (of the same type too) is folded.
func TestApplyIsolatesCorruptHashesAndOverflows(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	huge := 1.7e308
	tests := []struct {
		name    string
		setup   func(k store.Keys)
		batch   []metric.Metric
		applied int
		reject  map[int]string // batch index -> class
		reason  string         // in every rejection's reason
		counted map[string]int64
		// corruptRead is the type whose bucket read must say corrupt.
		corruptRead string
	}{
		{
			name:    "sum overflow of one type",
			batch:   []metric.Metric{atMinute("cpu", huge, 0), atMinute("mem", 1, 0), atMinute("cpu", huge, 1), atMinute("cpu", 5, 2)},
			applied: 3, reject: map[int]string{2: store.RejectNonFinite}, reason: "would overflow",
			counted: map[string]int64{"cpu": 2, "mem": 1},
		},
		{
			name: "overflow of one minute while the summary stays finite",
			batch: []metric.Metric{atMinute("cpu", -huge, 0), atMinute("cpu", huge, 1), atMinute("cpu", huge, 1),
				atMinute("cpu", 1, 3)},
			applied: 3, reject: map[int]string{2: store.RejectNonFinite}, reason: "minute 1",
			counted: map[string]int64{"cpu": 3},
		},
		{
			name:    "overflow against the stored summary",
			setup:   func(k store.Keys) { seedSummary(t, rdb, k, "cpu", "1", "1.7e308") },
			batch:   []metric.Metric{atMinute("cpu", huge, 0), atMinute("mem", 2, 0)},
			applied: 1, reject: map[int]string{0: store.RejectNonFinite}, reason: "would overflow",
			counted: map[string]int64{"cpu": 1, "mem": 1},
		},
		{
			name:    "corrupt summary",
			setup:   func(k store.Keys) { seedSummary(t, rdb, k, "bad", "x", "1") },
			batch:   []metric.Metric{atMinute("good", 1, 0), atMinute("bad", 1, 0), atMinute("good", 2, 1), atMinute("bad", 3, 2)},
			applied: 2, reject: map[int]string{1: store.RejectCorrupt, 3: store.RejectCorrupt}, reason: "is corrupt",
			counted: map[string]int64{"good": 2},
		},
		{
			name:    "summary poisoned with inf",
			setup:   func(k store.Keys) { seedSummary(t, rdb, k, "bad", "2", "inf") },
			batch:   []metric.Metric{atMinute("bad", 1, 0), atMinute("good", 1, 0)},
			applied: 1, reject: map[int]string{0: store.RejectCorrupt}, reason: "field sum",
			counted: map[string]int64{"good": 1},
		},
		{
			name: "corrupt bucket minute: only the entries of that minute",
			setup: func(k store.Keys) {
				rdb.HSet(ctx, k.Bucket(0, "cpu", store.Hour(hour0.UnixMicro())), "1", "garbage")
			},
			batch:   []metric.Metric{atMinute("cpu", 1, 0), atMinute("cpu", 2, 1), atMinute("mem", 3, 1), atMinute("cpu", 4, 2)},
			applied: 3, reject: map[int]string{1: store.RejectCorrupt}, reason: "minute 1 is corrupt",
			counted: map[string]int64{"cpu": 2, "mem": 1}, corruptRead: "cpu",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := limitedStore(t, srv.URL(), "iso"+string(rune('a'+i)), 1, 100)
			k := st.Keys()
			if tt.setup != nil {
				tt.setup(k)
			}
			batch := deliver(t, rdb, st, tt.batch...)
			g := st.Group(0, "g")
			res, err := g.Apply(ctx, batch, store.ApplyOptions{BucketRetention: 1000 * time.Hour, Now: hour0})
			if err != nil {
				t.Fatal(err)
			}
			if res.Applied != tt.applied || len(res.Rejected) != len(tt.reject) {
				t.Fatalf("result %+v, want %d applied and %d rejected", res, tt.applied, len(tt.reject))
			}
			for _, r := range res.Rejected {
				if tt.reject[r.Index] != r.Class || !strings.Contains(r.Reason, tt.reason) {
					t.Errorf("rejected %+v, want class %q and a reason with %q", r, tt.reject[r.Index], tt.reason)
				}
			}
			// Rejected entries stay pending for the dead-letter step; the rest is acknowledged.
			pending, err := g.Pending(ctx, store.PendingQuery{Start: "-", End: "+", Count: 100})
			if err != nil || len(pending) != len(tt.reject) {
				t.Fatalf("pending %v (%v), want the %d rejected entries", pending, err, len(tt.reject))
			}
			for typ, want := range tt.counted {
				s, found, err := st.Summary(ctx, typ)
				if err != nil || !found || s.Count != want || math.IsInf(s.Sum, 0) {
					t.Errorf("summary of %s: %+v found %t err %v, want count %d and a finite sum", typ, s, found, err, want)
				}
				_, err = st.Buckets(ctx, typ, hour0.UnixMicro(), hour0.Add(time.Hour).UnixMicro())
				if typ == tt.corruptRead && !errors.Is(err, store.ErrCorrupt) || typ != tt.corruptRead && err != nil {
					t.Errorf("buckets of %s: err %v", typ, err)
				}
			}
		})
	}
}

func seedSummary(t *testing.T, rdb *redis.Client, k store.Keys, typ, count, sum string) {
	t.Helper()
	us := hour0.UnixMicro()
	if err := rdb.HSet(context.Background(), k.Summary(0, typ), store.SummaryCount, count, store.SummarySum, sum,
		store.SummaryMin, "1", store.SummaryMax, "1", store.SummaryFirstTS, us, store.SummaryLastTS, us).Err(); err != nil {
		t.Fatal(err)
	}
}

// Values at INGEST_MAX_ABS_VALUE's default bound, as many as a type could
// get, can never make a read fail: every sum stays finite.
func TestValuesAtTheBoundKeepEveryReadWorking(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	st := limitedStore(t, srv.URL(), "", 1, 100)
	const bound = 1e18
	var ms []metric.Metric
	for i := range 2000 {
		v := bound
		if i%7 == 0 {
			v = -bound
		}
		ms = append(ms, atMinute("big", v, i%3))
	}
	batch := deliver(t, rdb, st, ms...)
	res, err := st.Group(0, "g").Apply(ctx, batch, store.ApplyOptions{BucketRetention: 1000 * time.Hour, Now: hour0})
	if err != nil || res.Applied != len(ms) || len(res.Rejected) != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	s, found, err := st.Summary(ctx, "big")
	if err != nil || !found || s.Count != int64(len(ms)) || math.IsInf(s.Sum, 0) || math.IsNaN(s.Average()) {
		t.Fatalf("summary %+v %v", s, err)
	}
	cells, err := st.Minutes(ctx, "big", hour0.UnixMicro(), hour0.Add(time.Hour).UnixMicro())
	if err != nil {
		t.Fatal(err)
	}
	if tot := store.Total(cells); tot.Count != int64(len(ms)) || math.IsInf(tot.Sum, 0) {
		t.Fatalf("window total %+v", tot)
	}
	// A stored sum at the edge of float64 is still read; inf is corrupt.
	seedSummary(t, rdb, st.Keys(), "edge", "1", "1.7976931348623157e308")
	if _, _, err := st.Summary(ctx, "edge"); err != nil {
		t.Fatalf("largest finite sum: %v", err)
	}
	seedSummary(t, rdb, st.Keys(), "poisoned", "1", "inf")
	if _, _, err := st.Summary(ctx, "poisoned"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("inf sum: err %v, want ErrCorrupt", err)
	}
}
