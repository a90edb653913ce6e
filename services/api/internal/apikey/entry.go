// Package apikey is the api's optional ingest authentication: the
// configured keys (API_KEYS / API_KEYS_FILE entries
// `name=sha256:<hex>[;q=<n>;w=<window>]`), the middleware that requires
// `Authorization: Bearer <key>` and puts the caller's Identity in the
// request context, and Generate, which makes a new key for `api keygen`.
//
// Only SHA-256 hashes are configured, never keys: a leaked config or log
// gives nobody a usable key. A presented key is hashed and compared with
// every configured hash in constant time. Neither a key nor a hash ever
// appears in an error, a log line or a String method of this package.
package apikey

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Limits on an entry's parts. Names end up in Redis keys, log lines and
// metric labels, so they are short and plain.
const (
	maxNameLen = 64
	// MaxQuota bounds q: the counter lives in a Lua number (a double).
	MaxQuota = 1_000_000_000
	// MinWindow is the shortest window, as RATE_LIMIT_WINDOW's.
	MinWindow = time.Second
)

// Quota is a key's own rate limit. A zero field is not set: that part of
// the default (RATE_LIMIT_MAX / RATE_LIMIT_WINDOW) applies.
type Quota struct {
	// Max is the requests per window (q), 0 when not set.
	Max int
	// Window is the window length (w), 0 when not set.
	Window time.Duration
}

// Entry is one parsed configuration entry.
type Entry struct {
	// Name is the identity the key stands for; several entries may share
	// one (rotation).
	Name string
	// Hash is the SHA-256 of the key.
	Hash [32]byte
	// Quota is the entry's own q/w (zero fields: the default).
	Quota Quota
}

// String names the entry without its hash, so formatting an Entry by
// mistake leaks nothing.
func (e Entry) String() string { return e.Name + "=sha256:…" }

// Line renders e in the configuration syntax that ParseEntry reads.
func (e Entry) Line() string {
	var b strings.Builder
	b.WriteString(e.Name)
	b.WriteString("=sha256:")
	b.WriteString(hex.EncodeToString(e.Hash[:]))
	if e.Quota.Max > 0 {
		b.WriteString(";q=")
		b.WriteString(strconv.Itoa(e.Quota.Max))
	}
	if e.Quota.Window > 0 {
		b.WriteString(";w=")
		b.WriteString(e.Quota.Window.String())
	}
	return b.String()
}

// ParseEntry parses `name=sha256:<hex>[;q=<n>][;w=<window>]` (q and w in
// either order, each at most once; spaces around the parts are ignored).
// The window is a Go duration or plain seconds, at least 1s. Errors
// describe the problem but quote nothing of s beyond a parameter name, so
// a key pasted by mistake where its hash belongs is never echoed.
func ParseEntry(s string) (Entry, error) {
	var e Entry
	head, params, more := strings.Cut(s, ";")
	name, hash, ok := strings.Cut(head, "=")
	if !ok {
		return e, errors.New("want name=sha256:<hex>: no '=' after the name")
	}
	name = strings.TrimSpace(name)
	if err := CheckName(name); err != nil {
		return e, err
	}
	hash = strings.TrimSpace(hash)
	hexPart, ok := strings.CutPrefix(hash, "sha256:")
	if !ok {
		return e, errors.New("the value must start with sha256: (configure the key's SHA-256, never the key itself; see api keygen)")
	}
	if len(hexPart) != 2*len(e.Hash) {
		return e, fmt.Errorf("the sha256 hash must be %d hex digits, got %d characters", 2*len(e.Hash), len(hexPart))
	}
	if _, err := hex.Decode(e.Hash[:], []byte(hexPart)); err != nil {
		return Entry{}, errors.New("the sha256 hash must be hex digits only")
	}
	e.Name = name
	seen := map[string]bool{}
	for more {
		var p string
		p, params, more = strings.Cut(params, ";")
		k, v, ok := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || (k != "q" && k != "w") {
			return Entry{}, errors.New("after the hash only ;q=<n> and ;w=<window> may follow")
		}
		if seen[k] {
			return Entry{}, fmt.Errorf("%s is given twice", k)
		}
		seen[k] = true
		var err error
		if k == "q" {
			e.Quota.Max, err = parseMax(v)
		} else {
			e.Quota.Window, err = ParseWindow(v)
		}
		if err != nil {
			return Entry{}, fmt.Errorf("%s: %w", k, err)
		}
	}
	return e, nil
}

// CheckName reports whether name can name a key: 1 to 64 of
// [A-Za-z0-9_.-].
func CheckName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("the name must be 1..%d characters, got %d", maxNameLen, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return errors.New("the name may only contain letters, digits and _ . -")
		}
	}
	return nil
}

func parseMax(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxQuota {
		return 0, fmt.Errorf("must be a whole number 1..%d", MaxQuota)
	}
	return n, nil
}

// ParseWindow reads a window the way RATE_LIMIT_WINDOW is read, a Go
// duration ("90s", "1m30s") or plain seconds ("90", "1.5"), and requires
// it to be finite, representable and at least MinWindow.
func ParseWindow(v string) (time.Duration, error) {
	const hint = `must be a Go duration ("60s", "1m30s") or plain seconds ("60"), at least 1s`
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		// NaN fails every comparison, so it is caught with the bounds.
		if !(secs >= MinWindow.Seconds() && secs <= float64(math.MaxInt64/int64(time.Second))) {
			return 0, errors.New(hint)
		}
		d = time.Duration(secs * float64(time.Second))
	} else {
		if d, err = time.ParseDuration(v); err != nil {
			return 0, errors.New(hint)
		}
	}
	if d < MinWindow {
		return 0, errors.New(hint)
	}
	return d, nil
}
