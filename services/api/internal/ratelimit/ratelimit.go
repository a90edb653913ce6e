// Package ratelimit holds the api's per-client fixed-window policy: how a
// client is keyed, what a decision is, and the headers that report it.
//
// The counting itself runs in Redis, inside the store's append script
// (package store): checking the limit and appending the metric in one script costs
// one round trip instead of two, and a rejected request writes nothing.
// Redis is the clock (PTTL), so every api replica agrees on windows.
package ratelimit

import (
	"net/http"
	"strconv"
	"time"
)

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

// Decide turns the counter Redis keeps for a client into p's decision:
// count is the client's request count in the window, including this
// request, and ttl the time until the window ends (Redis PTTL). The append
// script applies the same rule (allowed while count <= Max) before it
// writes; this is the rule's statement that tests can read.
func (p Policy) Decide(count int64, ttl time.Duration) Decision {
	return Decision{
		Allowed:   count <= int64(p.Max),
		Remaining: int(max(0, int64(p.Max)-count)),
		Reset:     max(0, ttl),
	}
}

// ResetSeconds is Reset rounded up to whole seconds, at least 1: a client
// told "0" would retry at once and be rejected again.
func (d Decision) ResetSeconds() int {
	s := int((d.Reset + time.Second - 1) / time.Second)
	return max(1, s)
}

// Headers writes one policy's IETF draft RateLimit-Policy and RateLimit
// headers and, when a request was rejected, Retry-After. Build it once per
// handler: the RateLimit-Policy value never changes.
type Headers struct {
	policy []string
}

// Headers returns p's header writer.
func (p Policy) Headers() Headers {
	return Headers{policy: []string{string(p.appendPolicy(nil))}}
}

// Set writes the headers for decision d. Values are assigned under their
// canonical keys: Header.Set would canonicalise "RateLimit" on every
// request of the hot path. The shared policy slice is only read by
// net/http.
func (hs Headers) Set(h http.Header, d Decision) {
	reset := d.ResetSeconds()
	h["Ratelimit-Policy"] = hs.policy
	h["Ratelimit"] = []string{string(appendItem(make([]byte, 0, 32), "r", d.Remaining, "t", reset))}
	if !d.Allowed {
		h["Retry-After"] = []string{strconv.Itoa(reset)}
	}
}

func (p Policy) appendPolicy(b []byte) []byte {
	return appendItem(b, "q", p.Max, "w", int(p.Window/time.Second))
}

// appendItem appends `"default";k1=v1;k2=v2`, a structured-field item.
func appendItem(b []byte, k1 string, v1 int, k2 string, v2 int) []byte {
	b = append(b, `"`+PolicyName+`";`...)
	b = append(b, k1...)
	b = append(b, '=')
	b = strconv.AppendInt(b, int64(v1), 10)
	b = append(b, ';')
	b = append(b, k2...)
	b = append(b, '=')
	return strconv.AppendInt(b, int64(v2), 10)
}
