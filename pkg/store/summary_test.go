package store_test

import (
	"errors"
	"testing"

	"github.com/resilientanalytics/ra/pkg/store"
)

func TestSummaryFromHash(t *testing.T) {
	tests := []struct {
		name    string
		h       map[string]string
		want    store.Summary
		found   bool
		wantErr bool
	}{
		{name: "missing", h: map[string]string{}, found: false},
		{name: "full", h: map[string]string{"count": "3", "sum": "7.5", "min": "-1", "max": "5.25", "first_ts": "1000", "last_ts": "3000"},
			want: store.Summary{Cell: store.Cell{Count: 3, Sum: 7.5, Min: -1, Max: 5.25}, FirstTS: 1000, LastTS: 3000}, found: true},
		{name: "lua float ts", h: map[string]string{"count": "1", "sum": "1", "min": "1", "max": "1", "first_ts": "1.771149600e+15", "last_ts": "1771149600000000"},
			want: store.Summary{Cell: store.Cell{Count: 1, Sum: 1, Min: 1, Max: 1}, FirstTS: 1771149600000000, LastTS: 1771149600000000}, found: true},
		{name: "corrupt", h: map[string]string{"count": "x"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := store.SummaryFromHash(tt.h)
			if tt.wantErr {
				if !errors.Is(err, store.ErrCorrupt) {
					t.Fatalf("err = %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil || found != tt.found || got != tt.want {
				t.Fatalf("got %+v found=%v err=%v; want %+v found=%v", got, found, err, tt.want, tt.found)
			}
		})
	}
}

func TestMergeAndAverage(t *testing.T) {
	a := store.Summary{Cell: store.Cell{Count: 2, Sum: 10, Min: 4, Max: 6}, FirstTS: 5, LastTS: 9}
	b := store.Summary{Cell: store.Cell{Count: 1, Sum: 20, Min: 20, Max: 20}, FirstTS: 1, LastTS: 3}
	m := a.Merge(b).Merge(store.Summary{})
	want := store.Summary{Cell: store.Cell{Count: 3, Sum: 30, Min: 4, Max: 20}, FirstTS: 1, LastTS: 9}
	if m != want {
		t.Fatalf("merge = %+v, want %+v", m, want)
	}
	if m.Average() != 10 {
		t.Fatalf("average = %v", m.Average())
	}
}
