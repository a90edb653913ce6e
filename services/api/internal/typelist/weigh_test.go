package typelist

import (
	"testing"

	"github.com/resilientanalytics/ra/pkg/store"
)

func TestWeighCountsTheArrayAndEveryName(t *testing.T) {
	tests := []struct {
		name string
		list []store.TypeSeen
		want int64
	}{
		{"empty", nil, 0},
		{"one", []store.TypeSeen{{Type: "cpu", LastSeen: 1}}, 24 + 3},
		{"spare capacity counts", append(make([]store.TypeSeen, 0, 4), store.TypeSeen{Type: "cpu", LastSeen: 1}, store.TypeSeen{Type: "memory", LastSeen: 2}), 4*24 + 3 + 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := weigh(tt.list); got != tt.want {
				t.Fatalf("weigh = %d, want %d", got, tt.want)
			}
		})
	}
}
