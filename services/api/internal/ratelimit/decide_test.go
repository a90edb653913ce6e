package ratelimit_test

import (
	"testing"
	"time"

	"github.com/resilientanalytics/ra/services/api/internal/ratelimit"
)

func TestDecide(t *testing.T) {
	p := ratelimit.Policy{Max: 5, Window: time.Minute}
	tests := []struct {
		name      string
		count     int64
		ttl       time.Duration
		allowed   bool
		remaining int
		reset     int
	}{
		{"first request opens the window", 1, time.Minute, true, 4, 60},
		{"the last allowed", 5, 30 * time.Second, true, 0, 30},
		{"one over", 6, 29500 * time.Millisecond, false, 0, 30},
		{"far over", 1000, 10 * time.Millisecond, false, 0, 1},
		{"expired between INCR and PTTL", 3, -2 * time.Millisecond, true, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(tt.count, tt.ttl)
			if d.Allowed != tt.allowed || d.Remaining != tt.remaining || d.ResetSeconds() != tt.reset {
				t.Fatalf("Decide(%d, %s) = %+v (reset %ds), want allowed %t remaining %d reset %ds",
					tt.count, tt.ttl, d, d.ResetSeconds(), tt.allowed, tt.remaining, tt.reset)
			}
		})
	}
}
