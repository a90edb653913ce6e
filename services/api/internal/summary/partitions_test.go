package summary

import (
	"context"
	"github.com/resilientanalytics/ra/pkg/store"
	"net/http"
	"testing"
)

func TestAllTimeSummaryMergesPartitions(t *testing.T) {
	e := mustEnv(t)
	st, err := store.New(e.rdb, "metrics", 3)
	if err != nil {
		t.Fatal(err)
	}
	e.h.store = st
	ctx := context.Background()
	for p, f := range []map[string]any{
		{store.SummaryCount: 2, store.SummarySum: "30", store.SummaryMin: "10", store.SummaryMax: "20", store.SummaryFirstTS: t1, store.SummaryLastTS: t1},
		nil, // partition 1 never saw the type
		{store.SummaryCount: 1, store.SummarySum: "-6", store.SummaryMin: "-6", store.SummaryMax: "-6", store.SummaryFirstTS: t0, store.SummaryLastTS: t0},
	} {
		if f != nil {
			e.rdb.HSet(ctx, e.keys.Summary(p, "cpu"), f)
		}
	}
	rec := e.get("?type=cpu")
	got := decode[Response](t, rec)
	want := Response{Type: "cpu", Count: 3, AverageValue: 8, MinValue: -6, MaxValue: 20, Sum: 24,
		FirstTimestamp: "2026-02-15T10:00:00Z", LastTimestamp: "2026-02-15T10:05:00.5Z"}
	if rec.Code != http.StatusOK || got != want {
		t.Fatalf("%d %+v, want %+v", rec.Code, got, want)
	}
	if n := e.reads.n.Load(); n != 3 {
		t.Errorf("%d HGETALLs, want one per partition", n)
	}
}

func TestRangeGoesToTheWindowedHandler(t *testing.T) {
	e := mustEnv(t)
	e.h.windowed = (http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for _, q := range []string{"?type=cpu&window=15m", "?type=cpu&from=x&to=y", "?type=cpu&to="} {
		if rec := e.get(q); rec.Code != http.StatusTeapot {
			t.Errorf("%s: %d, want the windowed handler", q, rec.Code)
		}
	}
	if rec := e.get("?type=cpu"); rec.Code != http.StatusNotFound {
		t.Errorf("no range: %d, want the all-time summary (404 here)", rec.Code)
	}
}
