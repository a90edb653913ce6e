package apikey

import (
	"context"
	"net/http"
	"strings"

	"github.com/resilientanalytics/ra/services/api/internal/fail"
	"github.com/resilientanalytics/ra/services/api/internal/middleware"
)

// Realm is the RFC 6750 realm of every challenge.
const Realm = "metrics"

// maxKeyLen bounds a presented key before it is hashed; generated keys are
// far shorter.
const maxKeyLen = 512

// Challenge values of WWW-Authenticate (RFC 6750 §3): without credentials
// the bare challenge, with bad ones error="invalid_token".
var (
	challenge        = []string{`Bearer realm="` + Realm + `"`}
	challengeInvalid = []string{`Bearer realm="` + Realm + `", error="invalid_token"`}
)

type identityKey struct{}

// FromContext returns the identity Middleware authenticated, if any.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	if !ok {
		return Identity{}, false
	}
	return *id, true
}

// Name is the authenticated key's name, "" when the request has none.
func Name(ctx context.Context) string {
	if id, ok := ctx.Value(identityKey{}).(*Identity); ok {
		return id.Name
	}
	return ""
}

// NewContext returns ctx carrying id (what Middleware does; for tests and
// callers that authenticate otherwise).
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, &id)
}

// Middleware requires `Authorization: Bearer <key>` with a configured key
// and puts the key's Identity in the request context (FromContext); it also
// hands the key's name to the access log. Anything else is answered with a
// 401 problem and a WWW-Authenticate challenge before the handler runs, so
// a rejected request never reaches Redis and its body is never read. With
// no keys configured it returns next unchanged.
func (s *Set) Middleware(next http.Handler) http.Handler {
	if s.Len() == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, res := bearer(r.Header["Authorization"])
		if res != presented {
			unauthorized(w, r, res)
			return
		}
		id, ok := s.Authenticate(key)
		if !ok {
			unauthorized(w, r, unknown)
			return
		}
		middleware.SetKey(w, id.Name)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

// credentials is what a request's Authorization header amounts to.
type credentials int

const (
	presented   credentials = iota // a well-formed bearer token
	missing                        // no Authorization header
	otherScheme                    // a scheme other than Bearer
	malformed                      // Bearer, but no single well-formed token
	unknown                        // well-formed, not configured
)

// bearer extracts the token of `Authorization: Bearer <token>` (RFC 6750
// §2.1: the scheme is case-insensitive, one space, then a b64token with
// nothing around it). More than one Authorization header is malformed.
func bearer(h []string) (string, credentials) {
	switch {
	case len(h) == 0:
		return "", missing
	case len(h) > 1:
		return "", malformed
	}
	v := h[0]
	const scheme = "bearer"
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		if strings.TrimSpace(v) == "" {
			return "", malformed
		}
		return "", otherScheme
	}
	rest := v[len(scheme):]
	if rest == "" || rest == " " {
		return "", malformed
	}
	if rest[0] != ' ' {
		return "", otherScheme // e.g. "BearerToken"
	}
	token := rest[1:]
	if len(token) > maxKeyLen || !isB64Token(token) {
		return "", malformed
	}
	return token, presented
}

// isB64Token reports whether t is RFC 6750's
// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(t string) bool {
	i := 0
	for i < len(t) {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(t); i++ {
		if t[i] != '=' {
			return false
		}
	}
	return true
}

func unauthorized(w http.ResponseWriter, r *http.Request, c credentials) {
	var detail string
	ch := challengeInvalid
	switch c {
	case missing:
		detail, ch = "this endpoint needs an API key: send Authorization: Bearer <key>", challenge
	case otherScheme:
		detail, ch = "the Authorization header must use the Bearer scheme: Authorization: Bearer <key>", challenge
	case malformed:
		detail = "the Authorization header is malformed: send exactly one, as Authorization: Bearer <key> (one space, nothing else)"
	default:
		detail = "the API key is not valid"
	}
	w.Header()["Www-Authenticate"] = ch
	fail.Write(w, r, nil, fail.Errorf(fail.Unauthorized, "%s", detail))
}
