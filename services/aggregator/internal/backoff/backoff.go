// Package backoff spaces out retries while Redis is unreachable: exponential
// growth between a floor and a ceiling, with jitter so that replicas which
// lost Redis together do not reconnect in lockstep.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff is the delay state of one retry loop; it is not safe for
// concurrent use (each loop owns its own).
type Backoff struct {
	// Min is the first delay (default 100ms).
	Min time.Duration
	// Max bounds every delay (default 5s).
	Max time.Duration

	attempt int
}

// Next returns the next delay: Min·2^attempt capped at Max, then drawn
// uniformly from [d/2, d] ("equal jitter": never zero, never above Max).
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi < lo {
		hi = 5 * time.Second
		if hi < lo {
			hi = lo
		}
	}
	d := lo
	for i := 0; i < b.attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if b.attempt < 32 {
		b.attempt++
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// Reset starts over at Min after a success.
func (b *Backoff) Reset() { b.attempt = 0 }
