package ratelimit_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/services/api/internal/apikey"
	"github.com/resilientanalytics/ra/services/api/internal/ratelimit"
)

func TestResetSecondsNeverZero(t *testing.T) {
	tests := []struct {
		reset time.Duration
		want  int
	}{
		{0, 1}, {-time.Second, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2}, {59500 * time.Millisecond, 60},
	}
	for _, tt := range tests {
		if got := (ratelimit.Decision{Reset: tt.reset}).ResetSeconds(); got != tt.want {
			t.Errorf("ResetSeconds(%s) = %d, want %d", tt.reset, got, tt.want)
		}
	}
}

func TestHeaders(t *testing.T) {
	p := ratelimit.Policy{Max: 5, Window: time.Minute}
	h := http.Header{}
	p.Headers().Set(h, ratelimit.Decision{Allowed: true, Remaining: 4, Reset: 59900 * time.Millisecond})
	if got := h.Get("RateLimit-Policy"); got != `"default";q=5;w=60` {
		t.Errorf("RateLimit-Policy = %s", got)
	}
	if got := h.Get("RateLimit"); got != `"default";r=4;t=60` {
		t.Errorf("RateLimit = %s", got)
	}
	if h.Get("Retry-After") != "" {
		t.Error("Retry-After on an allowed request")
	}
	h = http.Header{}
	p.Headers().Set(h, ratelimit.Decision{Allowed: false, Remaining: 0, Reset: 12300 * time.Millisecond})
	if h.Get("Retry-After") != "13" || h.Get("RateLimit") != `"default";r=0;t=13` {
		t.Errorf("rejected headers: %v", h)
	}
}

func TestClientKey(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		xff     string
		want    string
	}{
		{"direct client", nil, "203.0.113.7:5555", "", "203.0.113.7"},
		{"spoofed XFF ignored without trusted proxies", nil, "203.0.113.7:5555", "1.2.3.4", "203.0.113.7"},
		{"spoofed XFF from untrusted peer ignored", trusted, "203.0.113.7:5555", "1.2.3.4", "203.0.113.7"},
		{"trusted proxy's XFF honoured", trusted, "10.1.2.3:5555", "198.51.100.9", "198.51.100.9"},
		{"rightmost untrusted hop wins", trusted, "10.1.2.3:5555", "1.1.1.1, 198.51.100.9, 10.9.9.9", "198.51.100.9"},
		{"trusted proxy without XFF is the client", trusted, "10.1.2.3:5555", "", "10.1.2.3"},
		{"ipv6 keyed by /64", nil, "[2001:db8:1:2:aaaa::1]:5555", "", "2001:db8:1:2::/64"},
		{"ipv6 same /64 same key", nil, "[2001:db8:1:2:bbbb::9]:5555", "", "2001:db8:1:2::/64"},
		{"v4-mapped folds to v4", nil, "[::ffff:203.0.113.7]:5555", "", "203.0.113.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			h := ratelimit.ClientKey(tt.trusted)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = ratelimit.Key(r)
			}))
			r := httptest.NewRequest("POST", "/api/metrics", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if got != tt.want {
				t.Errorf("key = %q, want %q", got, tt.want)
			}
		})
	}
}

// With an API key the key's name is the client, wherever the request came
// from, and the key's own q/w replace the default's where set.
func TestClientOfAnAPIKey(t *testing.T) {
	def := ratelimit.Policy{Max: 5, Window: time.Minute}
	tests := []struct {
		name       string
		id         *apikey.Identity
		def        ratelimit.Policy
		wantClient string
		want       ratelimit.Policy
	}{
		{"no key: the address and the default", nil, def, "203.0.113.7", def},
		{"key without quota: the default", &apikey.Identity{Name: "ci"}, def, "key:ci", def},
		{"key with q and w", &apikey.Identity{Name: "ci", Quota: apikey.Quota{Max: 100, Window: time.Hour}}, def, "key:ci",
			ratelimit.Policy{Max: 100, Window: time.Hour}},
		{"key with q only", &apikey.Identity{Name: "ci", Quota: apikey.Quota{Max: 100}}, def, "key:ci",
			ratelimit.Policy{Max: 100, Window: time.Minute}},
		{"key with w only", &apikey.Identity{Name: "ci", Quota: apikey.Quota{Window: time.Second}}, def, "key:ci",
			ratelimit.Policy{Max: 5, Window: time.Second}},
		{"limiter off switches the key's quota off too", &apikey.Identity{Name: "ci", Quota: apikey.Quota{Max: 100, Window: time.Hour}},
			ratelimit.Policy{}, "key:ci", ratelimit.Policy{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/api/metrics", nil)
			r.RemoteAddr = "203.0.113.7:5555"
			if tt.id != nil {
				r = r.WithContext(apikey.NewContext(r.Context(), *tt.id))
			}
			client, p := ratelimit.Client(r, tt.def)
			if client != tt.wantClient || p != tt.want {
				t.Errorf("Client = %q %+v, want %q %+v", client, p, tt.wantClient, tt.want)
			}
			if key := ratelimit.Key(r); key != tt.wantClient {
				t.Errorf("Key = %q, want %q", key, tt.wantClient)
			}
		})
	}
}
