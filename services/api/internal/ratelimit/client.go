package ratelimit

import (
	"net"
	"net/http"
	"net/netip"

	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/resilientanalytics/ra/services/api/internal/apikey"
)

// KeyClientPrefix starts the client key of a request authenticated by an
// API key: "key:<name>". No IP address or /64 prefix contains "key:", so a
// key's counter can never be an address's.
const KeyClientPrefix = "key:"

// ClientKey returns middleware that resolves the client of each request for
// Key: the connection's IP, or the client named by X-Forwarded-For when the
// direct peer is inside trusted (chi's ClientIPFromXFF walk; never the
// spoofable RealIP).
func ClientKey(trusted []netip.Prefix) func(http.Handler) http.Handler {
	if len(trusted) == 0 {
		// ClientIPFromXFF panics without prefixes: with none, only the peer counts.
		return chimw.ClientIPFromRemoteAddr
	}
	s := make([]string, len(trusted))
	for i, p := range trusted {
		s[i] = p.String()
	}
	return chimw.ClientIPFromXFF(s...)
}

// Key is the rate-limit key of r's client: KeyClientPrefix and the name of
// the API key r authenticated with (package apikey), whatever address it
// came from; without one, the address ClientKey resolved, else the direct peer (a trusted proxy that sent no X-Forwarded-For is
// the client). IPv6 clients are keyed by their /64, since one host usually
// owns a whole /64 and could otherwise rotate addresses freely. It is
// computed on use rather than stored by the middleware: one context copy
// less per request on the hot path.
func Key(r *http.Request) string {
	if name := apikey.Name(r.Context()); name != "" {
		return KeyClientPrefix + name
	}
	ip := chimw.GetClientIPAddr(r.Context())
	if !ip.IsValid() {
		ip = remoteAddr(r.RemoteAddr)
	}
	return keyOf(ip)
}

// Client returns r's rate-limit key (Key) and the policy that applies to
// it: def, with the authenticated key's own q and w in place of def's where
// the key's entry sets them. A disabled def (RATE_LIMIT_ENABLED=false)
// stays disabled, per-key quotas included.
func Client(r *http.Request, def Policy) (string, Policy) {
	id, ok := apikey.FromContext(r.Context())
	if !ok {
		return Key(r), def
	}
	p := def
	if p.Enabled() {
		if id.Quota.Max > 0 {
			p.Max = id.Quota.Max
		}
		if id.Quota.Window > 0 {
			p.Window = id.Quota.Window
		}
	}
	return KeyClientPrefix + id.Name, p
}

func remoteAddr(s string) netip.Addr {
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap().WithZone("")
}

func keyOf(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return "unknown"
	case ip.Is4():
		return ip.String()
	default:
		p, _ := ip.Prefix(64)
		return p.String()
	}
}
