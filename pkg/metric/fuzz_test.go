package metric_test

import (
	"bytes"
	"errors"
	"math"
	"regexp"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/store"
)

// FuzzDecode: the decoder never panics and never accepts an invalid metric.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"timestamp":"2026-02-15T10:00:00","value":75,"type":"cpu_usage"}`,
		`[{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"a"},{"timestamp":"2026-02-15T10:00:00.5+01:00","value":-2e5,"type":"b.c"}]`,
		`{"timestamp":"2026-02-15T10:00:00","value":"75","type":"cpu_usage"}`,
		`{"timestamp":"2026-02-15T10:00:00","value":1e400,"type":"x"}`,
		`{"vlaue":1}`, `[]`, `null`, ``, `[null]`, `{"type":"a b"}`, `[[]]`, `{"timestamp":"","value":0,"type":"\u0000"}`,
		`{"timestamp":"2026-02-15t10:00:00.5z","value":-1e18,"type":"a"}`,
		`{"timestamp":"2026-12-01T12:10:00Z","value":1,"type":"a"}`,
		`{"timestamp":"2026-12-01T12:10:00.000001Z","value":1,"type":"a"}`,
		`{"timestamp":"2026-02-15T10:00:00+24:00","value":1,"type":"a"}`,
		`{"timestamp":"2016-12-31T23:59:60Z","value":1,"type":"a"}`,
		`{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"a","valu\u0065":2}`,
		`[{"timestamp":"2026-02-15T10:00:00Z","value":1,"value":1,"type":"a"}]`,
	} {
		f.Add([]byte(seed))
	}
	const maxBatch, maxAbs = 50, 1e18
	d := newDecoder(f, metric.Limits{MaxBatch: maxBatch, MaxAbsValue: maxAbs})
	latest := now.Add(metric.DefaultMaxFuture)
	f.Fuzz(func(t *testing.T, body []byte) {
		ms, batch, err := d.Decode(body)
		if err != nil {
			if ms != nil {
				t.Fatalf("error %v returned metrics too", err)
			}
			return
		}
		if len(ms) == 0 || len(ms) > maxBatch {
			t.Fatalf("accepted %d metrics", len(ms))
		}
		if !batch {
			// The same object with a member repeated must be refused,
			// naming that member.
			dup := append([]byte(`{"value":0,`), bytes.TrimSpace(body)[1:]...)
			_, _, err := d.Decode(dup)
			var ve *metric.ValidationError
			if !errors.As(err, &ve) || !hasField(ve, "value") {
				t.Fatalf("accepted %q, and with value repeated: %v", body, err)
			}
		}
		for _, m := range ms {
			if math.Abs(m.Value) > maxAbs {
				t.Fatalf("accepted value %v past the bound", m.Value)
			}
			if m.Timestamp.After(latest) {
				t.Fatalf("accepted timestamp %v past now+MaxFuture", m.Timestamp)
			}
			if msg := metric.ValidType(m.Type); msg != "" {
				t.Fatalf("accepted type %q: %s", m.Type, msg)
			}
			if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
				t.Fatalf("accepted value %v", m.Value)
			}
			if m.Timestamp.Unix() < 0 || m.Micros() >= 1<<53 || m.Timestamp.Location().String() != "UTC" {
				t.Fatalf("accepted timestamp %v", m.Timestamp)
			}
			// What the api writes, the aggregator must read back unchanged.
			fields := store.EntryFields(m)
			asMap := map[string]any{}
			for i := 0; i < len(fields); i += 2 {
				asMap[fields[i].(string)] = fields[i+1]
			}
			back, err := store.DecodeEntry(asMap)
			if err != nil || back.Value != m.Value || !back.Timestamp.Equal(m.Timestamp) || back.Type != m.Type {
				t.Fatalf("stream round trip of %+v: %+v, %v", m, back, err)
			}
		}
	})
}

func hasField(ve *metric.ValidationError, field string) bool {
	for _, fe := range ve.Errors {
		if fe.Field == field {
			return true
		}
	}
	return false
}

func BenchmarkDecodeSingle(b *testing.B) {
	body := []byte(`{"timestamp":"2026-02-15T10:00:00Z","value":75.5,"type":"cpu_usage"}`)
	d := newDecoder(b, metric.Limits{})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := d.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBatch100(b *testing.B) {
	var sb []byte
	sb = append(sb, '[')
	for i := range 100 {
		if i > 0 {
			sb = append(sb, ',')
		}
		sb = append(sb, `{"timestamp":"2026-02-15T10:00:00Z","value":75.5,"type":"cpu_usage"}`...)
	}
	sb = append(sb, ']')
	d := newDecoder(b, metric.Limits{})
	b.ReportAllocs()
	b.SetBytes(int64(len(sb)))
	for b.Loop() {
		if _, _, err := d.Decode(sb); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseTimeAgreesWithTimeParse: ParseTime reads every time it accepts
// as time.Parse reads it (once t/z are uppercased and a missing zone is
// written as Z), and refuses what time.Parse accepts only where time.Parse
// is laxer than RFC 3339 (laxRFC3339).
func FuzzParseTimeAgreesWithTimeParse(f *testing.F) {
	for _, s := range []string{
		"2026-02-15T10:00:00Z", "2026-02-15t10:00:00.5z", "2026-02-15T10:00:00", "2026-02-15T10:00:00+24:00",
		"2026-02-15T10:00:00-23:59", "2026-02-15T10:00:00,5Z", "2016-12-31T23:59:60Z", "2024-02-29T00:00:00.000000001+01:00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := metric.ParseTime(s)
		if err == nil {
			if got.Location() != time.UTC {
				t.Fatalf("%q: location %v", s, got.Location())
			}
			b := []byte(s)
			b[10] = 'T'
			if c := b[len(b)-1]; c == 'z' {
				b[len(b)-1] = 'Z'
			} else if c != 'Z' && (len(b) < 6 || b[len(b)-3] != ':' || b[len(b)-6] != '+' && b[len(b)-6] != '-') {
				b = append(b, 'Z')
			}
			leap := string(b[17:19]) == "60"
			if leap {
				b[17], b[18] = '5', '9' // time.Parse knows no leap second; ours is its last instant
			}
			want, werr := time.Parse(time.RFC3339Nano, string(b))
			if werr != nil {
				t.Fatalf("%q: ParseTime accepted %v, time.Parse(%q) refused: %v", s, got, b, werr)
			}
			if leap {
				want = want.Truncate(time.Second).Add(time.Second - 1)
			}
			if !got.Equal(want) {
				t.Fatalf("%q: ParseTime %v, time.Parse %v", s, got, want)
			}
			return
		}
		if _, werr := time.Parse(time.RFC3339Nano, s); werr == nil && !laxRFC3339(s) {
			t.Fatalf("%q: time.Parse accepts, ParseTime refuses: %v", s, err)
		}
	})
}

// rfc3339Grammar is the date-time production of RFC 3339 section 5.6 with
// the zone made optional, as the API takes it.
var rfc3339Grammar = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})?$`)

// laxRFC3339 reports the forms time.Parse accepts that RFC 3339 does not:
// anything off the grammar (one-digit fields, a comma before the fraction)
// and offsets of 24 hours or 60 minutes.
func laxRFC3339(s string) bool {
	if !rfc3339Grammar.MatchString(s) {
		return true
	}
	if n := len(s); n >= 6 && (s[n-6] == '+' || s[n-6] == '-') && s[n-3] == ':' {
		return s[n-5:n-3] >= "24" || s[n-2:] >= "60"
	}
	return false
}
