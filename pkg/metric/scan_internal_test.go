package metric

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// testNow is the clock of the internal tests: timestamps of the seeds are
// in its past, and INGEST_MAX_FUTURE is measured from it.
var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func testBounds(t testing.TB) *bounds {
	t.Helper()
	d, err := NewDecoder(Limits{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return &bounds{d: d, latest: testNow.Add(d.limits.MaxFuture)}
}

// FuzzScanSimpleAgreesWithGeneralPath: whatever the fast scanner accepts,
// the encoding/json path must decode to the same metric or the same errors.
func FuzzScanSimpleAgreesWithGeneralPath(f *testing.F) {
	for _, s := range []string{
		`{"timestamp":"2026-02-15T10:00:00","value":75,"type":"cpu_usage"}`,
		` { "type" : "a.b" , "value" : -1.5e-3 , "timestamp" : "2026-02-15T10:00:00.5+01:00" } `,
		`{"timestamp":"2026-02-15T10:00:00Z","value":"75","type":"a"}`,
		`{"timestamp":"2026-02-15T10:00:00Z","value":01,"type":"a"}`,
		`{"timestamp":"2026-02-15T10:00:00Z","value":1.,"type":"a"}`,
		`{"timestamp":"2026-02-15T10:00:00Z","value":1e400,"type":"a"}`,
		`{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"a","type":"b"}`,
		`{"timestamp":"2026\u002d02-15T10:00:00Z","value":1,"type":"a"}`,
		`{"timestamp":"x","value":1,"type":"a b"}`,
		`{"timestamp":"2026-02-15t10:00:00z","value":1e18,"type":"a"}`,
		`{"timestamp":"2026-02-15T10:00:00+24:00","value":-1.0000000000000001e18,"type":"a"}`,
		`{"timestamp":"2026-12-01T12:10:00.000001Z","value":1,"type":"a"}`,
		`{"timestamp":"2016-12-31T23:59:60Z","value":1,"type":"a"}`,
		`{"timestamp":"2024-02-29T00:00:00-23:59","value":1,"type":"a"}`,
	} {
		f.Add([]byte(s))
	}
	bd := testBounds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		it, ok := scanSimple(raw)
		if !ok {
			return
		}
		fm, ferrs := bd.validate(it, "")
		gm, gerrs := bd.decodeItemGeneral(raw, "")
		if !reflect.DeepEqual(fm, gm) || !reflect.DeepEqual(ferrs, gerrs) {
			t.Fatalf("fast %+v %v, general %+v %v for %q", fm, ferrs, gm, gerrs, raw)
		}
	})
}

func TestScanSimpleRejectsWhatItMustNotJudge(t *testing.T) {
	for _, s := range []string{
		`{"timestamp":"a\"b","value":1,"type":"a"}`,        // escape
		`{"timestamp":"x","value":1,"type":"a","extra":1}`, // unknown key
		`{"timestamp":"x","value":1}`,                      // missing key
		`{"timestamp":"x","value":1,"type":"a"} x`,         // trailing garbage
		`{"timestamp":"x","value":01,"type":"a"}`,          // not a JSON number
		`{"timestamp":"x","value":[1],"type":"a"}`,         // nested
		`{"timestamp":"x","value":true,"type":"a"}`,        // literal
		`{"timestamp":"x","value":1,"value":2,"type":"a"}`, // duplicate
	} {
		if _, ok := scanSimple([]byte(s)); ok {
			t.Errorf("scanSimple accepted %s", s)
		}
	}
}

// FuzzSplitSimpleArrayAgreesWithJSON: whatever the fast splitter accepts,
// encoding/json must accept too, with the same items byte for byte.
func FuzzSplitSimpleArrayAgreesWithJSON(f *testing.F) {
	for _, s := range []string{
		`[{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"a"},{"timestamp":"x","value":2,"type":"b"}]`,
		` [ { "a" : 1 } , {} ] `, `[]`, `[{"a":"}"}]`, `[{"a":[1]}]`, `[{"a":1}`, `[{"a":1},]`, `[{"a":"\"}"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		items, ok := splitSimpleArray(raw)
		if !ok {
			return
		}
		allSimple := true
		for _, it := range items {
			if _, ok := scanSimple(it); !ok {
				allSimple = false
			}
		}
		var ref []json.RawMessage
		if err := json.Unmarshal(raw, &ref); err != nil {
			// The splitter does not validate item syntax; Decode re-checks
			// with encoding/json whenever an item fails. But items that all
			// pass scanSimple must make a valid body.
			if allSimple {
				t.Fatalf("json rejects %q (%v) although every item is simple", raw, err)
			}
			return
		}
		if len(ref) != len(items) {
			t.Fatalf("split %d items, json %d, for %q", len(items), len(ref), raw)
		}
		for i := range ref {
			if string(ref[i]) != string(items[i]) {
				t.Fatalf("item %d: split %q, json %q", i, items[i], ref[i])
			}
		}
	})
}
