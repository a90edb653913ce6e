package ratelimit

import (
	"context"
	"net"
	"net/http"
	"net/netip"

	chimw "github.com/go-chi/chi/v5/middleware"
)

type clientKeyCtx struct{}

// ClientKey returns middleware that stores the client key of each request:
// the connection's IP, or the client named by X-Forwarded-For when the
// direct peer is inside trusted (chi's ClientIPFromXFF walk; never the
// spoofable RealIP). IPv6 clients are keyed by their /64, since one host
// usually owns a whole /64 and could otherwise rotate addresses freely.
func ClientKey(trusted []netip.Prefix) func(http.Handler) http.Handler {
	var resolve func(http.Handler) http.Handler
	if len(trusted) == 0 {
		// ClientIPFromXFF panics without prefixes: with none, only the peer counts.
		resolve = chimw.ClientIPFromRemoteAddr
	} else {
		s := make([]string, len(trusted))
		for i, p := range trusted {
			s[i] = p.String()
		}
		resolve = chimw.ClientIPFromXFF(s...)
	}
	return func(next http.Handler) http.Handler {
		keyed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ip := chimw.GetClientIPAddr(r.Context())
			if !ip.IsValid() {
				// A trusted peer that sent no X-Forwarded-For: the peer is the client.
				ip = remoteAddr(r.RemoteAddr)
			}
			r = r.WithContext(context.WithValue(r.Context(), clientKeyCtx{}, keyOf(ip)))
			next.ServeHTTP(w, r)
		})
		return resolve(keyed)
	}
}

// Key returns the client key stored by ClientKey ("unknown" if none).
func Key(ctx context.Context) string {
	if k, ok := ctx.Value(clientKeyCtx{}).(string); ok {
		return k
	}
	return "unknown"
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
