package window_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/services/api/internal/window"
)

var (
	now    = time.Date(2026, 2, 15, 10, 7, 30, 0, time.UTC)
	limits = window.Limits{Retention: 7 * 24 * time.Hour, MaxPoints: 1440}
)

func mustValues(t *testing.T, raw string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestNormalisation(t *testing.T) {
	tests := []struct {
		name     string
		series   bool
		query    string
		from, to string
		step     time.Duration
	}{
		{"aligned range", false, "type=cpu&from=2026-02-15T09:00:00Z&to=2026-02-15T10:00:00Z", "09:00:00", "10:00:00", time.Minute},
		{"bounds rounded outward", false, "type=cpu&from=2026-02-15T09:00:30Z&to=2026-02-15T09:59:00.5Z", "09:00:00", "10:00:00", time.Minute},
		{"zone converted to UTC", false, "type=cpu&from=2026-02-15T10:00:00%2B01:00&to=2026-02-15T10:00:00Z", "09:00:00", "10:00:00", time.Minute},
		{"no zone is UTC", false, "type=cpu&from=2026-02-15T09:00:00&to=2026-02-15T09:01:00", "09:00:00", "09:01:00", time.Minute},
		{"window ends at the current minute's end", false, "type=cpu&window=15m", "09:53:00", "10:08:00", time.Minute},
		{"series default step 1m", true, "type=cpu&window=1h", "09:08:00", "10:08:00", time.Minute},
		{"series aligned to the step", true, "type=cpu&window=1h&step=5m", "09:05:00", "10:10:00", 5 * time.Minute},
		{"series range to whole steps", true, "type=cpu&from=2026-02-15T09:03:00Z&to=2026-02-15T09:31:00Z&step=15m", "09:00:00", "09:45:00", 15 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parse := window.ParseSummary
			if tt.series {
				parse = window.ParseSeries
			}
			q, errs := parse(mustValues(t, tt.query), now, limits)
			if len(errs) > 0 {
				t.Fatalf("errors %v", errs)
			}
			if got := q.From.Format(time.TimeOnly); got != tt.from {
				t.Errorf("from %s, want %s", got, tt.from)
			}
			if got := q.To.Format(time.TimeOnly); got != tt.to {
				t.Errorf("to %s, want %s", got, tt.to)
			}
			if q.Step != tt.step || q.Type != "cpu" {
				t.Errorf("step %s type %q", q.Step, q.Type)
			}
			back, err := window.FromKey(q.Key())
			if err != nil || back != q {
				t.Errorf("FromKey(Key()) = %+v, %v; want %+v", back, err, q)
			}
		})
	}
}

func TestWindowsWithinOneMinuteShareAKey(t *testing.T) {
	a, _ := window.ParseSummary(mustValues(t, "type=cpu&window=15m"), now, limits)
	b, _ := window.ParseSummary(mustValues(t, "type=cpu&window=15m"), now.Add(29*time.Second), limits)
	if a.Key() != b.Key() {
		t.Errorf("keys differ within one minute: %q vs %q", a.Key(), b.Key())
	}
}

// TestBadQueries covers every 400 of the windowed summary and the series.
func TestBadQueries(t *testing.T) {
	tests := []struct {
		name   string
		series bool
		query  string
		field  string
		msg    string
	}{
		{"type missing", false, "window=15m", "type", "required"},
		{"type invalid", false, "type=a%20b&window=15m", "type", "may only contain"},
		{"from equals to", false, "type=cpu&from=2026-02-15T09:00:00Z&to=2026-02-15T09:00:00Z", "to", "after from"},
		{"from after to", false, "type=cpu&from=2026-02-15T10:00:00Z&to=2026-02-15T09:00:00Z", "to", "after from"},
		{"from unparsable", false, "type=cpu&from=yesterday&to=2026-02-15T09:00:00Z", "from", "RFC 3339"},
		{"to unparsable", false, "type=cpu&from=2026-02-15T09:00:00Z&to=1771149600", "to", "RFC 3339"},
		{"to missing", false, "type=cpu&from=2026-02-15T09:00:00Z", "to", "required with from"},
		{"from missing", false, "type=cpu&to=2026-02-15T09:00:00Z", "from", "required with to"},
		{"window not a duration", false, "type=cpu&window=fifteen", "window", "duration"},
		{"window without unit", false, "type=cpu&window=15", "window", "duration"},
		{"window not whole minutes", false, "type=cpu&window=90s", "window", "whole number of minutes"},
		{"window negative", false, "type=cpu&window=-5m", "window", "positive"},
		{"window and from", false, "type=cpu&window=5m&from=2026-02-15T09:00:00Z", "window", "cannot be combined"},
		{"window beyond retention", false, "type=cpu&window=169h", "window", "retention (BUCKET_RETENTION) of 168h0m0s"},
		{"from beyond retention", false, "type=cpu&from=2026-02-08T10:07:00Z&to=2026-02-15T09:00:00Z", "from", "kept for 168h0m0s"},
		{"to beyond retention", false, "type=cpu&from=2026-02-15T09:00:00Z&to=2026-02-23T00:00:00Z", "to", "168h0m0s"},
		{"series without range", true, "type=cpu&step=5m", "from", "required"},
		{"step not a duration", true, "type=cpu&window=1h&step=5", "step", "duration"},
		{"step not whole minutes", true, "type=cpu&window=1h&step=30s", "step", "whole number of minutes"},
		{"step zero", true, "type=cpu&window=1h&step=0s", "step", "positive"},
		{"too many points", true, "type=cpu&window=25h", "step", "1500 points; at most 1440"},
		{"too many points explicit", true, "type=cpu&from=2026-02-14T00:00:00Z&to=2026-02-15T10:00:00Z&step=1m", "step", "at most 1440"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parse := window.ParseSummary
			if tt.series {
				parse = window.ParseSeries
			}
			_, errs := parse(mustValues(t, tt.query), now, limits)
			for _, e := range errs {
				if e.Field == tt.field && strings.Contains(e.Message, tt.msg) {
					return
				}
			}
			t.Fatalf("errors %+v, want one on %q containing %q", errs, tt.field, tt.msg)
		})
	}
}

func TestExactlyMaxPointsIsAllowed(t *testing.T) {
	q, errs := window.ParseSeries(mustValues(t, "type=cpu&window=24h&step=1m"), now, limits)
	if len(errs) > 0 || q.Points() != 1440 {
		t.Fatalf("24h at 1m: %d points, %v", q.Points(), errs)
	}
}

func TestHasRange(t *testing.T) {
	if window.HasRange(mustValues(t, "type=cpu")) {
		t.Error("type alone is the all-time summary")
	}
	for _, q := range []string{"type=cpu&from=x", "type=cpu&to=", "type=cpu&window=1m"} {
		if !window.HasRange(mustValues(t, q)) {
			t.Errorf("%s has a range", q)
		}
	}
}

func TestFormatStep(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Minute: "1m", 5 * time.Minute: "5m", time.Hour: "1h", 90 * time.Minute: "1h30m", 24 * time.Hour: "24h"} {
		if got := window.FormatStep(d); got != want {
			t.Errorf("FormatStep(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestFromKeyRejectsGarbage(t *testing.T) {
	for _, k := range []string{"", "s|cpu|1|2", "x|cpu|0|60000000|1", "s|cpu|60000000|0|1", "s|cpu|0|60000000|0", "s|cpu|a|b|c"} {
		if _, err := window.FromKey(k); err == nil {
			t.Errorf("FromKey(%q) accepted", k)
		}
	}
}
