package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/store"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		c    store.Cell
	}{
		{"single", store.Of(75)},
		{"precision", store.Cell{Count: 2, Sum: 0.1 + 0.2, Min: 0.1, Max: 0.2}},
		{"negative", store.Cell{Count: 3, Sum: -7.5, Min: -5, Max: 1e300}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := store.DecodeCell(store.EncodeCell(tt.c))
			if err != nil || got != tt.c {
				t.Fatalf("round trip %+v -> %q -> %+v, %v", tt.c, store.EncodeCell(tt.c), got, err)
			}
		})
	}
}

func TestDecodeRejectsCorrupt(t *testing.T) {
	for _, s := range []string{"", "1 2 3", "x 1 1 1", "0 1 1 1", "1.5 1 1 1", "1 nan 1 1", "1 1 1 inf", "1 1 1 1 1"} {
		if _, err := store.DecodeCell(s); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("Decode(%q) err = %v, want ErrCorrupt", s, err)
		}
	}
	// Lua renders large integers as floats.
	if c, err := store.DecodeCell("1e+15 1 1 1"); err != nil || c.Count != 1e15 {
		t.Errorf("float count: %+v %v", c, err)
	}
}

func TestFromHash(t *testing.T) {
	hc, err := store.HourFromHash(map[string]string{"0": "1 5 5 5", "59": "2 3 1 2"})
	if err != nil {
		t.Fatal(err)
	}
	if hc.Minutes[0] != store.Of(5) || hc.Minutes[59] != (store.Cell{Count: 2, Sum: 3, Min: 1, Max: 2}) || hc.Minutes[1].Count != 0 {
		t.Fatalf("decoded %+v", hc)
	}
	for _, f := range []string{"60", "-1", "01", "x"} {
		if _, err := store.HourFromHash(map[string]string{f: "1 1 1 1"}); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("field %q: err = %v, want ErrCorrupt", f, err)
		}
	}
}

func TestMerge(t *testing.T) {
	c := store.Cell{}.Merge(store.Of(4)).Merge(store.Of(-2)).Merge(store.Cell{})
	if c != (store.Cell{Count: 2, Sum: 2, Min: -2, Max: 4}) || c.Average() != 1 {
		t.Fatalf("merged %+v avg %v", c, c.Average())
	}
	var a, b store.HourCells
	a.Minutes[3] = store.Of(1)
	b.Minutes[3] = store.Of(3)
	b.Minutes[4] = store.Of(9)
	a.Merge(&b)
	if a.Minutes[3] != (store.Cell{Count: 2, Sum: 4, Min: 1, Max: 3}) || a.Minutes[4] != store.Of(9) {
		t.Fatalf("hour merge %+v", a.Minutes[3:5])
	}
}

func TestHourAndMinute(t *testing.T) {
	ts := time.Date(2026, 2, 15, 10, 59, 59, 999999000, time.UTC).UnixMicro()
	if h := store.Hour(ts); h != time.Date(2026, 2, 15, 10, 0, 0, 0, time.UTC).Unix()/3600 {
		t.Errorf("hour %d", h)
	}
	if m := store.MinuteOfHour(ts); m != 59 {
		t.Errorf("minute %d", m)
	}
	if m := store.MinuteOfHour(ts + 1); m != 0 {
		t.Errorf("next minute %d", m)
	}
}

func ExampleEncodeCell() {
	c := store.Of(10).Merge(store.Of(2.5))
	fmt.Println(store.EncodeCell(c))
	// Output: 2 12.5 2.5 10
}
