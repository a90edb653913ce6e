// Package ratelimit holds the api's per-client fixed-window policy: how a
// client is keyed, what a decision is, and the headers that report it.
//
// The counting itself runs in Redis, inside the ingest script (see package
// ingest): checking the limit and appending the metric in one script costs
// one round trip instead of two, and a rejected request writes nothing.
// Redis is the clock (PTTL), so every api replica agrees on windows.
package ratelimit

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// ErrLimited is returned when a client is over its quota.
var ErrLimited = errors.New("rate limit exceeded")

// PolicyName is the policy identifier in the RateLimit headers and the 429.
const PolicyName = "default"

// Policy is Max requests per Window per client. A zero Policy is disabled.
type Policy struct {
	Max    int
	Window time.Duration
}

// Enabled reports whether requests are counted.
func (p Policy) Enabled() bool { return p.Max > 0 }

// Decision is the limiter's answer to one request.
type Decision struct {
	// Allowed is false when the client is over quota.
	Allowed bool
	// Remaining is how many more requests the window allows.
	Remaining int
	// Reset is the time until the window ends (Redis PTTL).
	Reset time.Duration
}

// ResetSeconds is Reset rounded up to whole seconds, at least 1: a client
// told "0" would retry at once and be rejected again.
func (d Decision) ResetSeconds() int {
	s := int((d.Reset + time.Second - 1) / time.Second)
	return max(1, s)
}

// SetHeaders writes the IETF draft RateLimit-Policy and RateLimit headers
// and, when the request was rejected, Retry-After.
func (p Policy) SetHeaders(h http.Header, d Decision) {
	h.Set("RateLimit-Policy", `"`+PolicyName+`";q=`+strconv.Itoa(p.Max)+`;w=`+strconv.Itoa(int(p.Window/time.Second)))
	reset := strconv.Itoa(d.ResetSeconds())
	h.Set("RateLimit", `"`+PolicyName+`";r=`+strconv.Itoa(d.Remaining)+`;t=`+reset)
	if !d.Allowed {
		h.Set("Retry-After", reset)
	}
}
