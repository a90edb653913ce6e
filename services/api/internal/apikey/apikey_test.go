package apikey_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/services/api/internal/apikey"
)

// hashOf is the configured form of key.
func hashOf(key string) string {
	s := sha256.Sum256([]byte(key))
	return hex.EncodeToString(s[:])
}

var hexA = hashOf("key-a")

func TestParseEntry(t *testing.T) {
	tests := []struct {
		name, in string
		want     apikey.Quota
		err      string // substring of the error; "" = valid
	}{
		{"plain", "ci=sha256:" + hexA, apikey.Quota{}, ""},
		{"upper-case hex", "ci=sha256:" + strings.ToUpper(hexA), apikey.Quota{}, ""},
		{"spaces around parts", " ci = sha256:" + hexA + " ; q = 10 ", apikey.Quota{Max: 10}, ""},
		{"quota", "ci=sha256:" + hexA + ";q=100;w=30s", apikey.Quota{Max: 100, Window: 30 * time.Second}, ""},
		{"w before q, plain seconds", "ci=sha256:" + hexA + ";w=90;q=1", apikey.Quota{Max: 1, Window: 90 * time.Second}, ""},
		{"fractional seconds", "ci=sha256:" + hexA + ";w=1.5", apikey.Quota{Window: 1500 * time.Millisecond}, ""},
		{"only w", "ci=sha256:" + hexA + ";w=1m", apikey.Quota{Window: time.Minute}, ""},
		{"no equals", "ci", apikey.Quota{}, "no '='"},
		{"empty name", "=sha256:" + hexA, apikey.Quota{}, "name must be 1..64"},
		{"long name", strings.Repeat("n", 65) + "=sha256:" + hexA, apikey.Quota{}, "name must be 1..64"},
		{"name with brace", "c{i}=sha256:" + hexA, apikey.Quota{}, "letters, digits"},
		{"raw key instead of hash", "ci=ra_abcdef", apikey.Quota{}, "must start with sha256:"},
		{"short hash", "ci=sha256:abcd", apikey.Quota{}, "64 hex digits, got 4"},
		{"non-hex hash", "ci=sha256:" + strings.Repeat("z", 64), apikey.Quota{}, "hex digits only"},
		{"unknown param", "ci=sha256:" + hexA + ";x=1", apikey.Quota{}, "only ;q=<n> and ;w=<window>"},
		{"param without value", "ci=sha256:" + hexA + ";q", apikey.Quota{}, "only ;q=<n>"},
		{"trailing semicolon", "ci=sha256:" + hexA + ";", apikey.Quota{}, "only ;q=<n>"},
		{"q twice", "ci=sha256:" + hexA + ";q=1;q=2", apikey.Quota{}, "q is given twice"},
		{"q zero", "ci=sha256:" + hexA + ";q=0", apikey.Quota{}, "q: must be a whole number"},
		{"q negative", "ci=sha256:" + hexA + ";q=-3", apikey.Quota{}, "q: must be a whole number"},
		{"q fraction", "ci=sha256:" + hexA + ";q=1.5", apikey.Quota{}, "q: must be a whole number"},
		{"q too big", "ci=sha256:" + hexA + ";q=1000000001", apikey.Quota{}, "q: must be a whole number"},
		{"w NaN", "ci=sha256:" + hexA + ";w=NaN", apikey.Quota{}, "w: must be a Go duration"},
		{"w Inf", "ci=sha256:" + hexA + ";w=+Inf", apikey.Quota{}, "w: must be a Go duration"},
		{"w overflowing seconds", "ci=sha256:" + hexA + ";w=1e300", apikey.Quota{}, "w: must be a Go duration"},
		{"w overflowing duration", "ci=sha256:" + hexA + ";w=9999999999h", apikey.Quota{}, "w: must be a Go duration"},
		{"w under 1s", "ci=sha256:" + hexA + ";w=500ms", apikey.Quota{}, "at least 1s"},
		{"w under 1s plain", "ci=sha256:" + hexA + ";w=0.5", apikey.Quota{}, "at least 1s"},
		{"w negative", "ci=sha256:" + hexA + ";w=-1m", apikey.Quota{}, "at least 1s"},
		{"w garbage", "ci=sha256:" + hexA + ";w=soon", apikey.Quota{}, "w: must be a Go duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := apikey.ParseEntry(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				if strings.Contains(strings.ToLower(err.Error()), hexA) || strings.Contains(err.Error(), "ra_abcdef") {
					t.Fatalf("error echoes the secret part: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Name != "ci" || hex.EncodeToString(e.Hash[:]) != hexA || e.Quota != tt.want {
				t.Fatalf("got %q %x %+v, want ci %s %+v", e.Name, e.Hash, e.Quota, hexA, tt.want)
			}
			back, err := apikey.ParseEntry(e.Line())
			if err != nil || back != e {
				t.Fatalf("Line %q does not parse back: %+v, %v", e.Line(), back, err)
			}
		})
	}
}

func TestEntryAndSetStringsHideTheHash(t *testing.T) {
	e, err := apikey.ParseEntry("ci=sha256:" + hexA)
	if err != nil {
		t.Fatal(err)
	}
	s, err := apikey.Parse("ci=sha256:" + hexA)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []string{fmt.Sprint(e), fmt.Sprintf("%v %+v %s", e, e, s), fmt.Sprintf("%v", []apikey.Entry{e})} {
		if strings.Contains(got, hexA) || strings.Contains(got, hexA[:16]) {
			t.Fatalf("formatting shows the hash: %s", got)
		}
	}
}

func TestParseListAndFile(t *testing.T) {
	hexB, hexC := hashOf("key-b"), hashOf("key-c")
	tests := []struct {
		name  string
		list  string // API_KEYS
		file  string // API_KEYS_FILE contents ("" = not set)
		names []string
		err   string
	}{
		{"empty", "", "", nil, ""},
		{"one", "a=sha256:" + hexA, "", []string{"a"}, ""},
		{"trailing comma and spaces", " a=sha256:" + hexA + " , b=sha256:" + hexB + ",", "", []string{"a", "b"}, ""},
		{"rotation: one name twice", "a=sha256:" + hexA + ";q=9,a=sha256:" + hexB + ";q=9", "", []string{"a"}, ""},
		{"bad second entry", "a=sha256:" + hexA + ",b=sha256:xyz", "", nil, "API_KEYS: entry 2: "},
		{"position counts blank entries", "a=sha256:" + hexA + ",,b", "", nil, "API_KEYS: entry 3: "},
		{"conflicting quota", "a=sha256:" + hexA + ";q=9,b=sha256:" + hexC + ",a=sha256:" + hexB + ";q=10", "", nil,
			`API_KEYS: entry 3: name "a" has another quota than in entry 1`},
		{"quota vs none conflicts", "a=sha256:" + hexA + ";w=10s,a=sha256:" + hexB, "", nil, `entry 2: name "a" has another quota`},
		{"same hash twice", "a=sha256:" + hexA + ",b=sha256:" + hexA, "", nil, "API_KEYS: entry 2: the same hash as entry 1"},
		{"file with comments", "", "# ci keys\n\na=sha256:" + hexA + "\n  # old\nb=sha256:" + hexB + ";q=3\n", []string{"a", "b"}, ""},
		{"file error names the line", "", "# header\n\na=sha256:" + hexA + "\nb=sha256:" + hexB + ";w=0s\n", nil, "line 4: w: "},
		{"file conflict names lines", "", "a=sha256:" + hexA + ";q=1\n#\na=sha256:" + hexB + ";q=2\n", nil, `line 3: name "a" has another quota than in line 1`},
		{"both set", "a=sha256:" + hexA, "b=sha256:" + hexB, nil, "API_KEYS and API_KEYS_FILE are both set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = filepath.Join(t.TempDir(), "keys")
				if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s, err := apikey.Load(tt.list, path)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				if path != "" && !strings.HasPrefix(err.Error(), "API_KEYS_FILE: "+path+" line ") && !strings.HasPrefix(err.Error(), "API_KEYS and") {
					t.Errorf("file error does not name the file and line: %v", err)
				}
				for _, h := range []string{hexA, hexB, hexC} {
					if strings.Contains(err.Error(), h) {
						t.Fatalf("error shows a hash: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Names(); fmt.Sprint(got) != fmt.Sprint(tt.names) {
				t.Fatalf("names %v, want %v", got, tt.names)
			}
		})
	}
	if _, err := apikey.Load("", filepath.Join(t.TempDir(), "missing")); err == nil || !strings.HasPrefix(err.Error(), "API_KEYS_FILE: cannot read ") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	s, err := apikey.Parse("a=sha256:" + hexA + ";q=7;w=2m,a=sha256:" + hashOf("key-a2") + ";q=7;w=2m,b=sha256:" + hashOf("key-b"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  string
		want string // "" = rejected
	}{
		{"key-a", "a"}, {"key-a2", "a"}, {"key-b", "b"},
		{"key-c", ""}, {"", ""}, {"key-a ", ""}, {"KEY-A", ""}, {hexA, ""},
	}
	for _, tt := range tests {
		id, ok := s.Authenticate(tt.key)
		if ok != (tt.want != "") || (ok && id.Name != tt.want) {
			t.Errorf("Authenticate(%q) = %v, %v; want %q", tt.key, id, ok, tt.want)
		}
	}
	if id, _ := s.Authenticate("key-a2"); id.Quota != (apikey.Quota{Max: 7, Window: 2 * time.Minute}) {
		t.Errorf("rotated key's quota %+v", id.Quota)
	}
	if _, ok := (*apikey.Set)(nil).Authenticate("key-a"); ok {
		t.Error("a nil set authenticated a key")
	}
}

func TestMiddleware(t *testing.T) {
	s, err := apikey.Parse("ci=sha256:" + hexA + ";q=3")
	if err != nil {
		t.Fatal(err)
	}
	const bare, invalid = `Bearer realm="metrics"`, `Bearer realm="metrics", error="invalid_token"`
	tests := []struct {
		name      string
		auth      []string
		status    int
		challenge string
	}{
		{"valid", []string{"Bearer key-a"}, 200, ""},
		{"scheme is case-insensitive", []string{"bearer key-a"}, 200, ""},
		{"missing", nil, 401, bare},
		{"wrong scheme", []string{"Basic a2V5LWE="}, 401, bare},
		{"token without scheme", []string{"key-a"}, 401, bare},
		{"scheme glued to token", []string{"Bearerkey-a"}, 401, bare},
		{"empty header", []string{""}, 401, invalid},
		{"scheme only", []string{"Bearer"}, 401, invalid},
		{"scheme and space", []string{"Bearer "}, 401, invalid},
		{"two spaces", []string{"Bearer  key-a"}, 401, invalid},
		{"trailing space", []string{"Bearer key-a "}, 401, invalid},
		{"tab", []string{"Bearer\tkey-a"}, 401, bare},
		{"two tokens", []string{"Bearer key-a key-a"}, 401, invalid},
		{"not a b64token", []string{"Bearer key,a"}, 401, invalid},
		{"padding in the middle", []string{"Bearer ke=y"}, 401, invalid},
		{"two headers", []string{"Bearer key-a", "Bearer key-a"}, 401, invalid},
		{"unknown", []string{"Bearer key-b"}, 401, invalid},
		{"the hash is not the key", []string{"Bearer " + hexA}, 401, invalid},
		{"oversized", []string{"Bearer " + strings.Repeat("k", 600)}, 401, invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got apikey.Identity
			var reached, bodyRead bool
			h := s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached = true
				got, _ = apikey.FromContext(r.Context())
			}))
			body := &watchedBody{Reader: strings.NewReader(`{"value":1}`), read: &bodyRead}
			req := httptest.NewRequest("POST", "/api/metrics", body)
			if tt.auth != nil {
				req.Header["Authorization"] = tt.auth
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if tt.status == 200 {
				if !reached || got.Name != "ci" || got.Quota.Max != 3 {
					t.Fatalf("handler reached %v with identity %+v", reached, got)
				}
				return
			}
			if reached || bodyRead {
				t.Fatalf("a rejected request reached the handler (%v) or had its body read (%v)", reached, bodyRead)
			}
			if ch := w.Header().Get("WWW-Authenticate"); ch != tt.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", ch, tt.challenge)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			b := w.Body.String()
			if !strings.Contains(b, `"status":401`) || !strings.Contains(b, "unauthorized") {
				t.Errorf("body %s", b)
			}
			if strings.Contains(b, "key-") || strings.Contains(b, hexA) {
				t.Errorf("body echoes credentials: %s", b)
			}
		})
	}
}

type watchedBody struct {
	*strings.Reader
	read *bool
}

func (b *watchedBody) Read(p []byte) (int, error) { *b.read = true; return b.Reader.Read(p) }

func TestMiddlewareWithoutKeysIsOpen(t *testing.T) {
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, s := range []*apikey.Set{nil, {}} {
		h := s.Middleware(next)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/api/metrics", nil))
		if w.Code != 200 {
			t.Fatalf("no keys: status %d", w.Code)
		}
	}
}

// The printed key authenticates against the printed entry, and nothing
// but the key line carries the key.
func TestKeygenOutputParsesBack(t *testing.T) {
	var out, notes bytes.Buffer
	if code := apikey.Keygen([]string{"ci-bot"}, &out, &notes); code != 0 {
		t.Fatalf("exit %d: %s", code, notes.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout %q, want the key and the entry", out.String())
	}
	key, line := lines[0], lines[1]
	if !regexp.MustCompile(`^ra_[A-Za-z0-9_-]{43}$`).MatchString(key) {
		t.Fatalf("key %q: want ra_ and 256 bits of URL-safe base64", key)
	}
	if strings.Contains(line, key) || strings.Contains(notes.String(), key) {
		t.Fatal("the key is repeated outside its line")
	}
	s, err := apikey.Parse(line)
	if err != nil {
		t.Fatalf("entry %q: %v", line, err)
	}
	id, ok := s.Authenticate(key)
	if !ok || id.Name != "ci-bot" {
		t.Fatalf("the generated key does not authenticate as ci-bot: %v %v", id, ok)
	}
	h := s.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest("POST", "/", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Fatalf("the generated key is not a valid bearer token: %d", w.Code)
	}
	var again bytes.Buffer
	apikey.Keygen([]string{"ci-bot"}, &again, &notes)
	if strings.Split(again.String(), "\n")[0] == key {
		t.Fatal("two keygen runs printed the same key")
	}
}

func TestKeygenRejectsBadUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"a", "b"}, {"bad name"}, {""}} {
		var out, notes bytes.Buffer
		if code := apikey.Keygen(args, &out, &notes); code != 2 || out.Len() != 0 {
			t.Errorf("keygen %q: exit %d, stdout %q", args, code, out.String())
		}
	}
}

// FuzzParseEntry: no input panics; an accepted entry renders back to
// itself; an error never contains a 64-hex-digit run of the input (a hash)
// nor the text after '=' (where a key pasted by mistake would be).
func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{
		"ci=sha256:" + hexA, "ci=sha256:" + hexA + ";q=10;w=1m", "ci=sha256:" + hexA + ";w=NaN",
		"ci=ra_secret", "=", ";;", "a=sha256:" + hexA + ";q=1;q=1", "a=sha256:" + hexA + ";w=1e308",
	} {
		f.Add(s)
	}
	hexRun := regexp.MustCompile(`[0-9a-fA-F]{64}`)
	f.Fuzz(func(t *testing.T, s string) {
		e, err := apikey.ParseEntry(s)
		if err != nil {
			msg := err.Error()
			for _, h := range hexRun.FindAllString(s, -1) {
				if strings.Contains(msg, h) {
					t.Fatalf("error %q shows the hash of %q", msg, s)
				}
			}
			if _, v, ok := strings.Cut(s, "="); ok && len(v) >= 8 && strings.Contains(msg, v) {
				t.Fatalf("error %q echoes the value of %q", msg, s)
			}
			return
		}
		if apikey.CheckName(e.Name) != nil || (e.Quota.Window != 0 && e.Quota.Window < time.Second) || e.Quota.Max < 0 {
			t.Fatalf("accepted an invalid entry %q: %+v", s, e)
		}
		back, err := apikey.ParseEntry(e.Line())
		if err != nil || back != e {
			t.Fatalf("%q -> %q does not parse back: %+v %v", s, e.Line(), back, err)
		}
	})
}
