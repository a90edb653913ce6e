package idempotency_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/resilientanalytics/ra/services/api/internal/idempotency"
)

func TestParse(t *testing.T) {
	long := strings.Repeat("k", idempotency.MaxLen)
	tests := []struct {
		name    string
		values  []string
		key     string
		present bool
		bad     bool
	}{
		{"absent", nil, "", false, false},
		{"quoted", []string{`"8e03978e-40d5-43e8-bc93-6894a57f9324"`}, "8e03978e-40d5-43e8-bc93-6894a57f9324", true, false},
		{"bare is the same key", []string{`8e03978e-40d5-43e8-bc93-6894a57f9324`}, "8e03978e-40d5-43e8-bc93-6894a57f9324", true, false},
		{"surrounding spaces", []string{"  \"abc\"\t"}, "abc", true, false},
		{"spaces inside quotes", []string{`"a b c"`}, "a b c", true, false},
		{"escapes", []string{`"a\"b\\c"`}, `a"b\c`, true, false},
		{"255 characters", []string{`"` + long + `"`}, long, true, false},
		{"255 bare", []string{long}, long, true, false},
		{"empty value", []string{""}, "", true, true},
		{"only spaces", []string{"   "}, "", true, true},
		{"empty string", []string{`""`}, "", true, true},
		{"256 characters", []string{`"` + long + `k"`}, "", true, true},
		{"256 bare", []string{long + "k"}, "", true, true},
		{"unterminated", []string{`"abc`}, "", true, true},
		{"trailing junk", []string{`"abc"x`}, "", true, true},
		{"parameters", []string{`"abc";a=1`}, "", true, true},
		{"a list", []string{`"a", "b"`}, "", true, true},
		{"two lines", []string{`"a"`, `"a"`}, "", true, true},
		{"bad escape", []string{`"a\b"`}, "", true, true},
		{"control character", []string{"\"a\x01b\""}, "", true, true},
		{"non-ASCII", []string{`"clé"`}, "", true, true},
		{"bare with a space", []string{"a b"}, "", true, true},
		{"bare with a quote", []string{`a"b`}, "", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, present, err := idempotency.Parse(tt.values)
			if key != tt.key || present != tt.present || (err != nil) != tt.bad {
				t.Fatalf("Parse(%q) = %q, %t, %v; want %q, %t, error %t", tt.values, key, present, err, tt.key, tt.present, tt.bad)
			}
			if err != nil && (!errors.Is(err, idempotency.ErrInvalid) || !strings.Contains(err.Error(), idempotency.Header)) {
				t.Errorf("error %q does not wrap ErrInvalid naming the header", err)
			}
		})
	}
}

// FuzzParse: whatever the header holds, Parse never panics, accepts only
// keys of 1..MaxLen printable ASCII characters, and a key it accepts reads
// back the same once quoted as a Structured Field string.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`"abc"`, "abc", `""`, `"a\"b"`, `"abc`, " x ", `"a";b`, "\x00", strings.Repeat("a", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		key, present, err := idempotency.Parse([]string{v})
		if !present {
			t.Fatalf("Parse(%q): a header line is always present", v)
		}
		if err != nil {
			if key != "" {
				t.Fatalf("Parse(%q) = %q with error %v", v, key, err)
			}
			return
		}
		if len(key) < 1 || len(key) > idempotency.MaxLen {
			t.Fatalf("Parse(%q) = key of %d characters", v, len(key))
		}
		for i := 0; i < len(key); i++ {
			if key[i] < 0x20 || key[i] > 0x7e {
				t.Fatalf("Parse(%q) = %q: not printable ASCII", v, key)
			}
		}
		quoted := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(key) + `"`
		if again, _, err := idempotency.Parse([]string{quoted}); err != nil || again != key {
			t.Fatalf("Parse(%q) = %q, but its quoted form %s reads %q, %v", v, key, quoted, again, err)
		}
	})
}
