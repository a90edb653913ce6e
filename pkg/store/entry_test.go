package store_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/store"
)

func entryMap(fields []any) map[string]any {
	m := map[string]any{}
	for i := 0; i < len(fields); i += 2 {
		m[fields[i].(string)] = fields[i+1]
	}
	return m
}

func TestEntryRoundTrip(t *testing.T) {
	values := []float64{0, -1.5, 75, math.MaxFloat64, math.SmallestNonzeroFloat64, 0.1 + 0.2, 1e-300}
	for _, v := range values {
		m := metric.Metric{Timestamp: time.Date(2026, 2, 15, 10, 0, 0, 123456000, time.UTC), Value: v, Type: "cpu"}
		asMap := entryMap(store.EntryFields(m))
		got, err := store.DecodeEntry(asMap)
		if err != nil {
			t.Fatalf("DecodeEntry(%v): %v", asMap, err)
		}
		if got.Value != v || !got.Timestamp.Equal(m.Timestamp) || got.Type != m.Type {
			t.Errorf("round trip of %v: got %+v", v, got)
		}
	}
}

func TestDecodeEntryRejectsBadEntries(t *testing.T) {
	tests := []struct {
		name   string
		fields map[string]any
	}{
		{"deleted", nil},
		{"missing type", map[string]any{"value": "1", "ts": "1"}},
		{"bad type", map[string]any{"type": "a b", "value": "1", "ts": "1"}},
		{"nan value", map[string]any{"type": "a", "value": "NaN", "ts": "1"}},
		{"inf value", map[string]any{"type": "a", "value": "+Inf", "ts": "1"}},
		{"text value", map[string]any{"type": "a", "value": "seventy", "ts": "1"}},
		{"negative ts", map[string]any{"type": "a", "value": "1", "ts": "-5"}},
		{"float ts", map[string]any{"type": "a", "value": "1", "ts": "1.5"}},
		{"ts past 2^53", map[string]any{"type": "a", "value": "1", "ts": "9007199254740992"}},
		{"non-string", map[string]any{"type": "a", "value": 1, "ts": "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := store.DecodeEntry(tt.fields); !errors.Is(err, store.ErrBadEntry) {
				t.Fatalf("err = %v, want ErrBadEntry", err)
			}
		})
	}
}
