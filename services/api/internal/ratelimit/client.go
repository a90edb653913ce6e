package ratelimit

import (
	"net"
	"net/http"
	"net/netip"

	chimw "github.com/go-chi/chi/v5/middleware"
)

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

// Key is the rate-limit key of r's client: the address ClientKey resolved,
// else the direct peer (a trusted proxy that sent no X-Forwarded-For is
// the client). IPv6 clients are keyed by their /64, since one host usually
// owns a whole /64 and could otherwise rotate addresses freely. It is
// computed on use rather than stored by the middleware: one context copy
// less per request on the hot path.
func Key(r *http.Request) string {
	ip := chimw.GetClientIPAddr(r.Context())
	if !ip.IsValid() {
		ip = remoteAddr(r.RemoteAddr)
	}
	return keyOf(ip)
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
