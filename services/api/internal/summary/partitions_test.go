package summary

import (
	"context"
	"net/http"
	"testing"

	sumhash "github.com/resilientanalytics/ra/pkg/summary"
)

func TestAllTimeSummaryMergesPartitions(t *testing.T) {
	e := mustEnv(t)
	e.h.partitions = 3
	ctx := context.Background()
	for p, f := range []map[string]any{
		{sumhash.FieldCount: 2, sumhash.FieldSum: "30", sumhash.FieldMin: "10", sumhash.FieldMax: "20", sumhash.FieldFirstTS: t1, sumhash.FieldLastTS: t1},
		nil, // partition 1 never saw the type
		{sumhash.FieldCount: 1, sumhash.FieldSum: "-6", sumhash.FieldMin: "-6", sumhash.FieldMax: "-6", sumhash.FieldFirstTS: t0, sumhash.FieldLastTS: t0},
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
