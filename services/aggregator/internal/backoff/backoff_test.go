package backoff_test

import (
	"testing"
	"time"

	"github.com/resilientanalytics/ra/services/aggregator/internal/backoff"
)

func TestDelaysGrowWithinBounds(t *testing.T) {
	b := backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	var last time.Duration
	for i := 0; i < 50; i++ {
		d := b.Next()
		if d < 50*time.Millisecond || d > 5*time.Second {
			t.Fatalf("attempt %d: delay %s outside [50ms, 5s]", i, d)
		}
		last = d
	}
	if last < 2500*time.Millisecond {
		t.Errorf("delay after many attempts = %s, want near the 5s ceiling", last)
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Errorf("after Reset delay = %s, want <= Min", d)
	}
}
