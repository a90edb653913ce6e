package bucket_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/bucket"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		c    bucket.Cell
	}{
		{"single", bucket.Of(75)},
		{"precision", bucket.Cell{Count: 2, Sum: 0.1 + 0.2, Min: 0.1, Max: 0.2}},
		{"negative", bucket.Cell{Count: 3, Sum: -7.5, Min: -5, Max: 1e300}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bucket.Decode(bucket.Encode(tt.c))
			if err != nil || got != tt.c {
				t.Fatalf("round trip %+v -> %q -> %+v, %v", tt.c, bucket.Encode(tt.c), got, err)
			}
		})
	}
}

func TestDecodeRejectsCorrupt(t *testing.T) {
	for _, s := range []string{"", "1 2 3", "x 1 1 1", "0 1 1 1", "1.5 1 1 1", "1 nan 1 1", "1 1 1 inf", "1 1 1 1 1"} {
		if _, err := bucket.Decode(s); !errors.Is(err, bucket.ErrCorrupt) {
			t.Errorf("Decode(%q) err = %v, want ErrCorrupt", s, err)
		}
	}
	// Lua renders large integers as floats.
	if c, err := bucket.Decode("1e+15 1 1 1"); err != nil || c.Count != 1e15 {
		t.Errorf("float count: %+v %v", c, err)
	}
}

func TestFromHash(t *testing.T) {
	hc, err := bucket.FromHash(map[string]string{"0": "1 5 5 5", "59": "2 3 1 2"})
	if err != nil {
		t.Fatal(err)
	}
	if hc.Minutes[0] != bucket.Of(5) || hc.Minutes[59] != (bucket.Cell{Count: 2, Sum: 3, Min: 1, Max: 2}) || hc.Minutes[1].Count != 0 {
		t.Fatalf("decoded %+v", hc)
	}
	for _, f := range []string{"60", "-1", "01", "x"} {
		if _, err := bucket.FromHash(map[string]string{f: "1 1 1 1"}); !errors.Is(err, bucket.ErrCorrupt) {
			t.Errorf("field %q: err = %v, want ErrCorrupt", f, err)
		}
	}
}

func TestMerge(t *testing.T) {
	c := bucket.Cell{}.Merge(bucket.Of(4)).Merge(bucket.Of(-2)).Merge(bucket.Cell{})
	if c != (bucket.Cell{Count: 2, Sum: 2, Min: -2, Max: 4}) || c.Average() != 1 {
		t.Fatalf("merged %+v avg %v", c, c.Average())
	}
	var a, b bucket.HourCells
	a.Minutes[3] = bucket.Of(1)
	b.Minutes[3] = bucket.Of(3)
	b.Minutes[4] = bucket.Of(9)
	a.Merge(&b)
	if a.Minutes[3] != (bucket.Cell{Count: 2, Sum: 4, Min: 1, Max: 3}) || a.Minutes[4] != bucket.Of(9) {
		t.Fatalf("hour merge %+v", a.Minutes[3:5])
	}
}

func TestHourAndMinute(t *testing.T) {
	ts := time.Date(2026, 2, 15, 10, 59, 59, 999999000, time.UTC).UnixMicro()
	if h := bucket.Hour(ts); h != time.Date(2026, 2, 15, 10, 0, 0, 0, time.UTC).Unix()/3600 {
		t.Errorf("hour %d", h)
	}
	if m := bucket.MinuteOfHour(ts); m != 59 {
		t.Errorf("minute %d", m)
	}
	if m := bucket.MinuteOfHour(ts + 1); m != 0 {
		t.Errorf("next minute %d", m)
	}
}

func ExampleEncode() {
	c := bucket.Of(10).Merge(bucket.Of(2.5))
	fmt.Println(bucket.Encode(c))
	// Output: 2 12.5 2.5 10
}
