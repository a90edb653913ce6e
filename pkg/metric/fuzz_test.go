package metric_test

import (
	"math"
	"testing"

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
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ms, _, err := metric.Decode(body, 50)
		if err != nil {
			if ms != nil {
				t.Fatalf("error %v returned metrics too", err)
			}
			return
		}
		if len(ms) == 0 || len(ms) > 50 {
			t.Fatalf("accepted %d metrics", len(ms))
		}
		for _, m := range ms {
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

func BenchmarkDecodeSingle(b *testing.B) {
	body := []byte(`{"timestamp":"2026-02-15T10:00:00Z","value":75.5,"type":"cpu_usage"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := metric.Decode(body, 1000); err != nil {
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
	b.ReportAllocs()
	b.SetBytes(int64(len(sb)))
	for b.Loop() {
		if _, _, err := metric.Decode(sb, 1000); err != nil {
			b.Fatal(err)
		}
	}
}
