package store_test

import (
	"context"
	"testing"

	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
)

// Redis 7.0 does not persist a group's entries-read counter: after a
// restart from the AOF, XINFO GROUPS has no lag (or a wrong one) even when
// everything is delivered. Info and GroupStats count instead, so the lag
// is the number of entries not delivered yet, before and after a restart.
func TestLagIsCountedAcrossAnAOFRestart(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{AOF: true})
	srv.RequireReal(t)
	st := serviceStore(t, srv.URL(), false, 1)
	rdb := srv.Client(t)
	ctx := context.Background()
	g := st.Group(0, "aggregators")
	if err := g.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, "c", store.Limit{}, metrics(50, "t"), store.Idempotency{}); err != nil {
		t.Fatal(err)
	}
	read := func(n int) {
		t.Helper()
		es, err := g.Read(ctx, "c1", ">", n, 0)
		if err != nil || len(es) != n {
			t.Fatalf("read %d: %d entries, %v", n, len(es), err)
		}
		ids := make([]string, len(es))
		for i, e := range es {
			ids[i] = e.ID
		}
		if err := rdb.XAck(ctx, g.Stream(), "aggregators", ids...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string, want int64) {
		t.Helper()
		info, err := g.Info(ctx)
		if err != nil || info.Lag != want || info.Pending != 0 {
			t.Errorf("%s: Info = %+v, %v; want lag %d, nothing pending", step, info, err, want)
		}
		stats, err := st.GroupStats(ctx, "aggregators")
		if err != nil || len(stats) != 1 || stats[0].Lag == nil || *stats[0].Lag != want {
			t.Errorf("%s: GroupStats = %+v, %v; want lag %d", step, stats, err, want)
		}
	}
	read(30)
	check("30 of 50 delivered", 20)
	srv.Kill(t)
	srv.Restart(t)
	xinfo, _ := rdb.XInfoGroups(ctx, g.Stream()).Result()
	t.Logf("XINFO GROUPS after the restart: %+v", xinfo)
	check("after the restart", 20)
	read(20)
	check("all delivered", 0)
	srv.Kill(t)
	srv.Restart(t)
	check("all delivered, restarted", 0)
}
