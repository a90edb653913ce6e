package metric_test

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/metric"
)

func item(ts, value string) string {
	return `{"timestamp":"` + ts + `","value":` + value + `,"type":"a"}`
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// TestDecodeBounds: each bound accepts its edge and refuses one step past
// it, with a message naming the bound and its variable.
func TestDecodeBounds(t *testing.T) {
	const ts = "2026-02-15T10:00:00Z"
	past := func(f float64) string { return fmtFloat(math.Nextafter(f, math.Inf(1))) }
	edge := now.Add(10 * time.Minute)
	tests := []struct {
		name    string
		limits  metric.Limits
		body    string
		field   string // "" = accepted
		message string
	}{
		{name: "value at the default bound", body: item(ts, "1e18")},
		{name: "negative value at the default bound", body: item(ts, "-1e18")},
		{name: "value past the default bound", body: item(ts, past(1e18)),
			field: "value", message: "must be within ±1e+18 (INGEST_MAX_ABS_VALUE)"},
		{name: "negative value past the default bound", body: item(ts, "-"+past(1e18)),
			field: "value", message: "must be within ±1e+18 (INGEST_MAX_ABS_VALUE)"},
		{name: "the overflowing value of the probe", body: item(ts, "1.7e308"),
			field: "value", message: "must be within ±1e+18 (INGEST_MAX_ABS_VALUE)"},
		{name: "value at a configured bound", limits: metric.Limits{MaxAbsValue: 100}, body: item(ts, "100")},
		{name: "value past a configured bound", limits: metric.Limits{MaxAbsValue: 100}, body: item(ts, past(100)),
			field: "value", message: "must be within ±100 (INGEST_MAX_ABS_VALUE)"},
		{name: "timestamp at the default future bound", body: item(edge.Format(time.RFC3339Nano), "1")},
		{name: "timestamp at the bound written with an offset", body: item(edge.In(time.FixedZone("", -5*3600)).Format(time.RFC3339Nano), "1")},
		{name: "timestamp 1µs past the default future bound", body: item(edge.Add(time.Microsecond).Format(time.RFC3339Nano), "1"),
			field: "timestamp", message: "must not be more than 10m0s ahead of the server's clock (INGEST_MAX_FUTURE)"},
		{name: "timestamp 1ns past the bound", body: item(edge.Add(time.Nanosecond).Format(time.RFC3339Nano), "1"),
			field: "timestamp", message: "must not be more than 10m0s ahead of the server's clock (INGEST_MAX_FUTURE)"},
		{name: "year 2200 of the probe", body: item("2200-01-01T00:00:00Z", "1"),
			field: "timestamp", message: "must not be more than 10m0s ahead of the server's clock (INGEST_MAX_FUTURE)"},
		{name: "timestamp at a configured future bound", limits: metric.Limits{MaxFuture: time.Hour},
			body: item(now.Add(time.Hour).Format(time.RFC3339), "1")},
		{name: "timestamp past a configured future bound", limits: metric.Limits{MaxFuture: time.Hour},
			body:  item(now.Add(time.Hour+time.Second).Format(time.RFC3339), "1"),
			field: "timestamp", message: "must not be more than 1h0m0s ahead of the server's clock (INGEST_MAX_FUTURE)"},
		{name: "batch item past the value bound", body: "[" + item(ts, "1") + "," + item(ts, "2e18") + "]",
			field: "[1].value", message: "must be within ±1e+18 (INGEST_MAX_ABS_VALUE)"},
		{name: "batch item past the future bound", body: "[" + item(now.Add(11*time.Minute).Format(time.RFC3339), "1") + "]",
			field: "[0].timestamp", message: "must not be more than 10m0s ahead of the server's clock (INGEST_MAX_FUTURE)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, _, err := newDecoder(t, tt.limits).Decode([]byte(tt.body))
			if tt.field == "" {
				if err != nil || len(ms) != 1 {
					t.Fatalf("%s: got %v, %v; want accepted", tt.body, ms, err)
				}
				return
			}
			var ve *metric.ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) != 1 {
				t.Fatalf("%s: err = %v, want one field error", tt.body, err)
			}
			if got := ve.Errors[0]; got.Field != tt.field || got.Message != tt.message {
				t.Fatalf("error %+v, want %s: %s", got, tt.field, tt.message)
			}
		})
	}
}

// TestDecodeReadsTheClockPerBody: the bound moves with the injected clock.
func TestDecodeReadsTheClockPerBody(t *testing.T) {
	clock := now
	d := newDecoder(t, metric.Limits{Now: func() time.Time { return clock }})
	body := []byte(item(now.Add(time.Hour).Format(time.RFC3339), "1"))
	if _, _, err := d.Decode(body); err == nil {
		t.Fatal("accepted a timestamp an hour ahead")
	}
	clock = now.Add(55 * time.Minute)
	if _, _, err := d.Decode(body); err != nil {
		t.Fatalf("the clock moved on, still refused: %v", err)
	}
}

func TestNewDecoderLimits(t *testing.T) {
	clock := func() time.Time { return now }
	d, err := metric.NewDecoder(metric.Limits{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if l := d.Limits(); l.MaxBatch != 1000 || l.MaxAbsValue != 1e18 || l.MaxFuture != 10*time.Minute {
		t.Errorf("defaults: %+v", l)
	}
	for _, tt := range []struct {
		name string
		l    metric.Limits
	}{
		{"no clock", metric.Limits{}},
		{"negative batch", metric.Limits{MaxBatch: -1, Now: clock}},
		{"NaN value bound", metric.Limits{MaxAbsValue: math.NaN(), Now: clock}},
		{"infinite value bound", metric.Limits{MaxAbsValue: math.Inf(1), Now: clock}},
		{"negative value bound", metric.Limits{MaxAbsValue: -1, Now: clock}},
		{"negative future", metric.Limits{MaxFuture: -time.Second, Now: clock}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := metric.NewDecoder(tt.l); err == nil {
				t.Fatalf("NewDecoder(%+v) accepted", tt.l)
			}
		})
	}
}

func TestDecodeDuplicateMembers(t *testing.T) {
	good := item("2026-02-15T10:00:00Z", "1")
	tests := []struct {
		name   string
		body   string
		fields []string
	}{
		{"value twice, same value", `{"value":1,"value":1,"timestamp":"2026-02-15T10:00:00Z","type":"a"}`, []string{"value"}},
		{"value twice, the probe's", `{"timestamp":"2026-02-15T10:00:00Z","value":1,"value":2,"type":"a"}`, []string{"value"}},
		{"timestamp twice", `{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"a","timestamp":"2026-02-15T10:00:00Z"}`, []string{"timestamp"}},
		{"type three times", `{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"a","type":"b","type":"c"}`, []string{"type"}},
		{"escaped name is the same member", `{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"a","typ\u0065":"b"}`, []string{"type"}},
		{"unknown member twice", `{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"a","x":1,"x":2}`, []string{"x"}},
		{"in a batch item", "[" + good + `,{"timestamp":"2026-02-15T10:00:00Z","value":1,"value":2,"type":"a"}]`, []string{"[1].value"}},
		{"in a batch item with spaces", "[" + good + ` , { "type":"a", "type" : "a", "value":1,"timestamp":"2026-02-15T10:00:00Z"} ]`, []string{"[1].type"}},
	}
	d := newDecoder(t, metric.Limits{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := d.Decode([]byte(tt.body))
			var ve *metric.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a validation error", err)
			}
			var fields []string
			for _, fe := range ve.Errors {
				fields = append(fields, fe.Field)
				if fe.Field == tt.fields[0] && !strings.Contains(fe.Message, "duplicate") && !strings.Contains(fe.Message, "unknown") {
					t.Errorf("%s: message %q does not say duplicate", fe.Field, fe.Message)
				}
			}
			if strings.Join(fields, ",") != strings.Join(tt.fields, ",") {
				t.Fatalf("fields %v, want %v", fields, tt.fields)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	}
	tests := []struct {
		in   string
		want time.Time // zero = rejected
	}{
		{"2026-02-15T10:00:00Z", utc(2026, 2, 15, 10, 0, 0, 0)},
		{"2026-02-15t10:00:00z", utc(2026, 2, 15, 10, 0, 0, 0)},
		{"2026-02-15T10:00:00", utc(2026, 2, 15, 10, 0, 0, 0)},
		{"2026-02-15T10:00:00.5", utc(2026, 2, 15, 10, 0, 0, 5e8)},
		{"2026-02-15T10:00:00.123456789123Z", utc(2026, 2, 15, 10, 0, 0, 123456789)},
		{"2026-02-15T10:00:00+23:59", utc(2026, 2, 14, 10, 1, 0, 0)},
		{"2026-02-15T10:00:00-23:59", utc(2026, 2, 16, 9, 59, 0, 0)},
		{"2026-02-15T10:00:00-00:00", utc(2026, 2, 15, 10, 0, 0, 0)},
		{"2024-02-29T00:00:00Z", utc(2024, 2, 29, 0, 0, 0, 0)},
		{"2000-02-29T00:00:00Z", utc(2000, 2, 29, 0, 0, 0, 0)},
		{"2026-04-30T23:59:59Z", utc(2026, 4, 30, 23, 59, 59, 0)},
		{"2016-12-31T23:59:60Z", utc(2016, 12, 31, 23, 59, 59, 999999999)},
		{"2016-12-31T23:59:60.5Z", utc(2016, 12, 31, 23, 59, 59, 999999999)},
		{"2015-06-30T23:59:60Z", utc(2015, 6, 30, 23, 59, 59, 999999999)},
		{"2016-12-31T18:59:60-05:00", utc(2016, 12, 31, 23, 59, 59, 999999999)},
		{"2026-02-15T10:00:00+24:00", time.Time{}},
		{"2026-02-15T10:00:00+23:60", time.Time{}},
		{"2026-02-15T10:00:00+0100", time.Time{}},
		{"2026-02-15T10:00:00+01", time.Time{}},
		{"2026-02-15T24:00:00Z", time.Time{}},
		{"2026-02-15T10:60:00Z", time.Time{}},
		{"2026-02-15T10:00:61Z", time.Time{}},
		{"2026-02-15T10:00:60Z", time.Time{}},
		{"2016-12-30T23:59:60Z", time.Time{}},
		{"2026-02-29T00:00:00Z", time.Time{}},
		{"1900-02-29T00:00:00Z", time.Time{}},
		{"2026-04-31T00:00:00Z", time.Time{}},
		{"2026-13-01T00:00:00Z", time.Time{}},
		{"2026-00-01T00:00:00Z", time.Time{}},
		{"2026-01-00T00:00:00Z", time.Time{}},
		{"2026-02-15T10:00:00,5Z", time.Time{}},
		{"2026-02-15T10:00:00.Z", time.Time{}},
		{"2026-02-15 10:00:00Z", time.Time{}},
		{"2026-02-15T10:00Z", time.Time{}},
		{"2026-02-15", time.Time{}},
		{"2026-2-15T10:00:00Z", time.Time{}},
		{"+2026-02-15T10:00:00Z", time.Time{}},
		{"2026-02-15T10:00:00ZZ", time.Time{}},
		{"2026-02-15T10:00:00Z ", time.Time{}},
		{"2026-02-15T1a:00:00Z", time.Time{}},
		{"", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := metric.ParseTime(tt.in)
			if tt.want.IsZero() {
				if err == nil {
					t.Fatalf("accepted as %v", got)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestTimestampErrorsSayWhy: a refused timestamp tells the client which
// part is wrong.
func TestTimestampErrorsSayWhy(t *testing.T) {
	d := newDecoder(t, metric.Limits{})
	for ts, want := range map[string]string{
		"2026-02-15T10:00:00+24:00": "zone offset",
		"2026-02-15T24:00:00Z":      "hour",
		"2026-02-30T10:00:00Z":      "day",
		"yesterday":                 "YYYY-MM-DD",
	} {
		_, _, err := d.Decode([]byte(item(ts, "1")))
		var ve *metric.ValidationError
		if !errors.As(err, &ve) || ve.Errors[0].Field != "timestamp" || !strings.Contains(ve.Errors[0].Message, want) {
			t.Errorf("%s: %v, want the message to mention %q", ts, err, want)
		}
	}
}
