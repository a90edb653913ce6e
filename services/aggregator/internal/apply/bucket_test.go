package apply_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/internal/apply"
	"github.com/resilientanalytics/ra/services/aggregator/internal/streamtest"
)

// now is the fixed clock of these tests: half past the current hour. It
// must be near Redis's own clock, which expires the bucket hashes
// (EXPIREAT in the past deletes the key at once).
var now = time.Now().UTC().Truncate(time.Hour).Add(30 * time.Minute)

func newClockedFixture(t *testing.T, retention time.Duration) fixture {
	t.Helper()
	f := newFixture(t)
	a, err := apply.New(streamtest.Group(t, f.rdb, f.k.Family(), 0, group), apply.Options{Consumer: "c1", BucketRetention: retention,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	f.a = a
	return f
}

func at(typ string, v float64, ts time.Time) metric.Metric {
	return metric.Metric{Type: typ, Value: v, Timestamp: ts.UTC()}
}

func (f fixture) hour(t *testing.T, typ string, ts time.Time) store.HourCells {
	t.Helper()
	h, err := f.rdb.HGetAll(context.Background(), f.k.Bucket(0, typ, ts.Unix()/3600)).Result()
	if err != nil {
		t.Fatal(err)
	}
	hc, err := store.HourFromHash(h)
	if err != nil {
		t.Fatal(err)
	}
	return hc
}

func (f fixture) applyAll(t *testing.T, ms ...metric.Metric) apply.Result {
	t.Helper()
	streamtest.Add(t, f.rdb, f.stream, ms...)
	res, err := f.a.Apply(context.Background(), f.read(t, "c1", int64(len(ms))))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestBucketsByEventMinute(t *testing.T) {
	f := newClockedFixture(t, 0) // default 7d
	ctx := context.Background()
	h10 := now.Truncate(time.Hour) // "10:00" below
	f.applyAll(t,
		at("cpu", 10, h10.Add(5*time.Minute)),
		at("cpu", 20, h10.Add(5*time.Minute+59*time.Second+999*time.Millisecond)),
		at("cpu", -4, h10.Add(6*time.Minute)),
		at("cpu", 7, h10.Add(-time.Microsecond)), // 09:59:59.999999: previous hour, minute 59
		at("mem", 1, h10.Add(5*time.Minute)),
	)
	// A second batch into the same minute merges with what is stored.
	f.applyAll(t, at("cpu", 30, h10.Add(5*time.Minute+time.Second)))

	hc := f.hour(t, "cpu", h10)
	if got, want := hc.Minutes[5], (store.Cell{Count: 3, Sum: 60, Min: 10, Max: 30}); got != want {
		t.Errorf("10:05 = %+v, want %+v", got, want)
	}
	if got := hc.Minutes[6]; got != store.Of(-4) {
		t.Errorf("10:06 = %+v", got)
	}
	if got := f.hour(t, "cpu", h10.Add(-time.Hour)).Minutes[59]; got != store.Of(7) {
		t.Errorf("09:59 = %+v", got)
	}
	if got := f.hour(t, "mem", h10).Minutes[5]; got != store.Of(1) {
		t.Errorf("mem 10:05 = %+v", got)
	}
	// Expiry: the end of the hour + retention, absolute.
	exp, err := f.rdb.Do(ctx, "EXPIRETIME", f.k.Bucket(0, "cpu", h10.Unix()/3600)).Int64()
	if err != nil {
		t.Fatal(err)
	}
	if want := h10.Add(time.Hour + apply.DefaultBucketRetention).Unix(); exp != want {
		t.Errorf("EXPIRETIME %d, want %d (hour end + 7d)", exp, want)
	}
	// Types: member per type, score = latest event time (µs).
	zs := f.rdb.ZRangeWithScores(ctx, f.k.Types(0), 0, -1).Val()
	want := []redis.Z{{Member: "mem", Score: float64(h10.Add(5 * time.Minute).UnixMicro())}, {Member: "cpu", Score: float64(h10.Add(6 * time.Minute).UnixMicro())}}
	if fmt.Sprint(zs) != fmt.Sprint(want) {
		t.Errorf("types %v, want %v", zs, want)
	}
}

func TestTypesLastSeenNeverGoesBack(t *testing.T) {
	f := newClockedFixture(t, 0)
	f.applyAll(t, at("cpu", 1, now))
	f.applyAll(t, at("cpu", 1, now.Add(-time.Hour)), at("new", 1, now.Add(-time.Hour)))
	if s := f.rdb.ZScore(context.Background(), f.k.Types(0), "cpu").Val(); s != float64(now.UnixMicro()) {
		t.Errorf("cpu last seen %v, want %v (an older batch must not lower it)", s, now.UnixMicro())
	}
	if s := f.rdb.ZScore(context.Background(), f.k.Types(0), "new").Val(); s != float64(now.Add(-time.Hour).UnixMicro()) {
		t.Errorf("new type not added with GT: score %v", s)
	}
}

func TestOutsideRetentionCountsButIsNotBucketed(t *testing.T) {
	f := newClockedFixture(t, 2*time.Hour)
	old := now.Add(-2*time.Hour - time.Microsecond)
	edge := now.Add(-2 * time.Hour)
	future := now.Add(2 * time.Hour)
	res := f.applyAll(t, at("cpu", 1, old), at("cpu", 2, edge), at("cpu", 4, future), at("cpu", 8, future.Add(-time.Minute)))
	if res.Applied != 4 {
		t.Fatalf("applied %d, want 4", res.Applied)
	}
	s, _ := streamtest.Summary(t, f.rdb, f.k, "cpu")
	if s.Count != 4 || s.Sum != 15 {
		t.Errorf("summary %+v: every metric counts all-time", s)
	}
	if n := f.rdb.Exists(context.Background(), f.k.Bucket(0, "cpu", old.Unix()/3600)).Val(); n != 0 {
		// old and edge share an hour (08:29:59.999999 and 08:30): only edge is in it.
		if got := f.hour(t, "cpu", old).Minutes; got[29].Count != 0 || got[30] != store.Of(2) {
			t.Errorf("hour of the old metric: 08:29 %+v, 08:30 %+v", got[29], got[30])
		}
	}
	if got := f.hour(t, "cpu", future).Minutes[30]; got.Count != 0 {
		t.Errorf("a metric retention ahead of now was bucketed: %+v", got)
	}
	if got := f.hour(t, "cpu", future).Minutes[29]; got != store.Of(8) {
		t.Errorf("a metric just inside the future bound: %+v", got)
	}
}

func TestRedeliveredBatchDoesNotDoubleBuckets(t *testing.T) {
	f := newClockedFixture(t, 0)
	ctx := context.Background()
	streamtest.Add(t, f.rdb, f.stream, at("cpu", 3, now), at("cpu", 5, now))
	msgs := f.read(t, "c1", 10)
	for range 3 {
		if _, err := f.a.Apply(ctx, msgs); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.hour(t, "cpu", now).Minutes[30]; got != (store.Cell{Count: 2, Sum: 8, Min: 3, Max: 5}) {
		t.Errorf("bucket %+v after three deliveries, want count 2", got)
	}
}

// TestWindowsMatchBruteForce is the property test: 3,000 metrics of three
// types spread over three hours (and a few outside the retention), applied
// in random batches through the real path, then every window and step the
// reader answers equals a brute-force fold of the raw inputs. Values are
// multiples of 1/4 so float sums are exact in any order.
func TestWindowsMatchBruteForce(t *testing.T) {
	const retention = 4 * time.Hour
	f := newClockedFixture(t, retention)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	types := []string{"cpu", "mem", "disk.io"}
	start := now.Add(-3 * time.Hour).Add(-17*time.Minute - 13*time.Second) // not on an hour nor a minute
	var ms []metric.Metric
	for range 3000 {
		ts := start.Add(time.Duration(rng.Int64N(int64(3 * time.Hour))))
		ms = append(ms, at(types[rng.IntN(len(types))], float64(rng.IntN(4000)-2000)/4, ts))
	}
	for i := range 20 { // older than the retention: summary only
		ms = append(ms, at(types[i%3], 1, now.Add(-retention-time.Duration(i+1)*time.Minute)))
	}
	rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	for off := 0; off < len(ms); {
		n := 1 + rng.IntN(300)
		end := min(off+n, len(ms))
		f.applyAll(t, ms[off:end]...)
		off = end
	}

	r, err := store.New(f.rdb, f.k.Family(), 1)
	if err != nil {
		t.Fatal(err)
	}
	brute := func(typ string, from, to time.Time) store.Cell {
		var c store.Cell
		for _, m := range ms {
			if m.Type == typ && !m.Timestamp.Before(from) && m.Timestamp.Before(to) && !m.Timestamp.Before(now.Add(-retention)) {
				c = c.Merge(store.Of(m.Value))
			}
		}
		return c
	}
	lo := now.Add(-retention).Truncate(time.Minute).Add(time.Minute)
	hi := now.Add(10 * time.Minute)
	span := int(hi.Sub(lo) / time.Minute)
	checked := 0
	for trial := range 60 {
		typ := types[trial%3]
		a := rng.IntN(span)
		b := a + 1 + rng.IntN(span-a)
		from, to := lo.Add(time.Duration(a)*time.Minute), lo.Add(time.Duration(b)*time.Minute)
		minutes, err := r.Minutes(ctx, typ, from.UnixMicro(), to.UnixMicro())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := store.Total(minutes), brute(typ, from, to); got != want {
			t.Fatalf("%s [%s, %s): total %+v, want %+v", typ, from, to, got, want)
		}
		for _, step := range []int{1, 5, 7, 60} {
			points := store.Fold(minutes, step)
			for i, p := range points {
				ps := from.Add(time.Duration(i*step) * time.Minute)
				pe := ps.Add(time.Duration(step) * time.Minute)
				if pe.After(to) {
					pe = to
				}
				if want := brute(typ, ps, pe); p != want {
					t.Fatalf("%s step %dm point %s: %+v, want %+v", typ, step, ps, p, want)
				}
				checked++
			}
		}
	}
	for _, typ := range types {
		s, _ := streamtest.Summary(t, f.rdb, f.k, typ)
		var want int64
		for _, m := range ms {
			if m.Type == typ {
				want++
			}
		}
		if s.Count != want {
			t.Errorf("summary of %s counts %d, want %d (old metrics included)", typ, s.Count, want)
		}
	}
	t.Logf("checked %d points over 60 windows", checked)
}

// TestReaderMergesPartitions: the same minute in two partitions is one
// cell (the api reads every partition).
func TestReaderMergesPartitions(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	k := store.NewKeys("metrics")
	h := now.Unix() / 3600
	rdb.HSet(ctx, k.Bucket(0, "cpu", h), "30", store.EncodeCell(store.Of(1)))
	rdb.HSet(ctx, k.Bucket(2, "cpu", h), "30", store.EncodeCell(store.Of(5)), "31", store.EncodeCell(store.Of(2)))
	r, err := store.New(rdb, k.Family(), 3)
	if err != nil {
		t.Fatal(err)
	}
	cells, err := r.Minutes(ctx, "cpu", now.UnixMicro(), now.Add(2*time.Minute).UnixMicro())
	if err != nil {
		t.Fatal(err)
	}
	if cells[0] != (store.Cell{Count: 2, Sum: 6, Min: 1, Max: 5}) || cells[1] != store.Of(2) {
		t.Errorf("merged %+v", cells)
	}
}
