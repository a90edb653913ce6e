// Package idempotency parses the Idempotency-Key request header
// (draft-ietf-httpapi-idempotency-key-header-07): an RFC 8941 Structured
// Field Item whose value is a String, `"8e03978e-40d5-43e8-bc93-6894a57f9324"`.
// Many clients send the key without the quotes, so a bare token is taken
// too: `"abc"` and `abc` are the same key. The key is 1 to MaxLen
// printable ASCII characters. What the api does with it (one record per
// client and key, checked in the append script) is package ingest's and
// pkg/store's.
package idempotency

import (
	"errors"
	"fmt"
	"strings"
)

// Header is the request header's name.
const Header = "Idempotency-Key"

// MaxLen is the longest key accepted, in characters (after unescaping).
const MaxLen = 255

// ErrInvalid is wrapped by every parse error; the message says what is
// wrong for the client, naming the header.
var ErrInvalid = errors.New("invalid " + Header + " header")

// Parse returns the key that the Idempotency-Key field lines carry (the
// request's r.Header values). present is false when there is none; err is
// set when the header is there but is not one key: empty, several, a
// string that does not close, characters outside printable ASCII, or too
// long.
func Parse(values []string) (key string, present bool, err error) {
	if len(values) == 0 {
		return "", false, nil
	}
	if len(values) > 1 {
		return "", true, invalid("send one key, got %d header lines", len(values))
	}
	v := strings.Trim(values[0], " \t")
	switch {
	case v == "":
		return "", true, invalid("the value is empty; send a key of 1 to %d printable characters", MaxLen)
	case v[0] == '"':
		key, err = parseString(v)
	default:
		key, err = parseBare(v)
	}
	if err != nil {
		return "", true, err
	}
	if n := len(key); n == 0 || n > MaxLen {
		return "", true, invalid("the key is %d characters; it must be 1 to %d", n, MaxLen)
	}
	return key, true, nil
}

// parseString reads an sf-string that must be the whole value: DQUOTE,
// printable ASCII with \" and \\ escaped, DQUOTE.
func parseString(v string) (string, error) {
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\':
			i++
			if i == len(v) || (v[i] != '"' && v[i] != '\\') {
				return "", invalid(`a backslash in a quoted key must escape " or \`)
			}
			b.WriteByte(v[i])
		case c == '"':
			if i != len(v)-1 {
				return "", invalid("unexpected characters after the quoted key")
			}
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", invalid("the key must be printable ASCII")
		default:
			b.WriteByte(c)
		}
		if b.Len() > MaxLen {
			return "", invalid("the key is longer than %d characters", MaxLen)
		}
	}
	return "", invalid("the quoted key does not end with a closing quote")
}

// parseBare takes an unquoted key: visible ASCII without the characters a
// Structured Field would read as something else (quotes, backslash, the
// separators of lists and parameters).
func parseBare(v string) (string, error) {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= 0x20 || c > 0x7e || strings.IndexByte(`"\,;`, c) >= 0 {
			return "", invalid("an unquoted key must be visible ASCII without spaces, quotes, backslashes, commas or semicolons; quote it as a string (\"...\")")
		}
	}
	return v, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
