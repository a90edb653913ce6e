package window_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/services/api/internal/window"
)

// FuzzParse feeds arbitrary query strings to both parsers. Whatever the
// input, they must not panic, and an accepted query must be normalised:
// from < to on whole steps, step a positive multiple of a minute, at most
// MaxPoints points for a series, inside the retention band (give or take
// the outward rounding), and its cache key must round-trip.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"type=cpu&window=15m",
		"type=cpu&from=2026-02-15T09:00:00Z&to=2026-02-15T10:00:00Z&step=5m",
		"type=cpu&from=2026-02-15T09:00:00.123456789%2B05:30&to=2026-02-15T10:00:00",
		"type=cpu&window=168h&step=7m",
		"type=a&window=-1m&step=1h1m",
		"type=cpu&from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&step=2562047h",
		"type=cpu&window=1e9h",
		"from=&to=&window=&step=",
	} {
		f.Add(s, int64(0))
	}
	base := time.Date(2026, 2, 15, 10, 7, 30, 0, time.UTC)
	limits := window.Limits{Retention: 7 * 24 * time.Hour, MaxPoints: 1440}
	f.Fuzz(func(t *testing.T, raw string, skew int64) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		now := base.Add(time.Duration(skew % int64(365*24*time.Hour)))
		for _, parse := range []func(url.Values, time.Time, window.Limits) (window.Query, []metric.FieldError){
			window.ParseSummary, window.ParseSeries,
		} {
			got, errs := parse(q, now, limits)
			if len(errs) > 0 {
				for _, e := range errs {
					if e.Field == "" || e.Message == "" {
						t.Fatalf("error without field or message: %+v", errs)
					}
				}
				continue
			}
			if got.Step <= 0 || got.Step%time.Minute != 0 {
				t.Fatalf("step %s", got.Step)
			}
			step := got.Step.Microseconds()
			if !got.From.Before(got.To) || got.From.UnixMicro()%step != 0 || got.To.UnixMicro()%step != 0 {
				t.Fatalf("range [%s, %s) step %s not normalised", got.From, got.To, got.Step)
			}
			if got.Kind == window.Series && got.Points() > limits.MaxPoints {
				t.Fatalf("%d points", got.Points())
			}
			if got.From.Before(now.Add(-limits.Retention-got.Step)) || got.To.After(now.Add(limits.Retention+got.Step)) {
				t.Fatalf("[%s, %s) outside the retention around %s", got.From, got.To, now)
			}
			back, err := window.FromKey(got.Key())
			if err != nil || back != got {
				t.Fatalf("key round trip: %+v, %v; want %+v", back, err, got)
			}
		}
	})
}
