package typelist

import "testing"

func TestWeighCountsTheArrayAndEveryName(t *testing.T) {
	tests := []struct {
		name string
		list []known
		want int64
	}{
		{"empty", nil, 0},
		{"one", []known{{"cpu", 1}}, 24 + 3},
		{"spare capacity counts", append(make([]known, 0, 4), known{"cpu", 1}, known{"memory", 2}), 4*24 + 3 + 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := weigh(tt.list); got != tt.want {
				t.Fatalf("weigh = %d, want %d", got, tt.want)
			}
		})
	}
}
