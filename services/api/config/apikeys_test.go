package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resilientanalytics/ra/services/api/config"
)

const hash = "101a2c1d34600c1a1317920c0cc842603394b0f500fde3380d60b01c901209da"

func TestAPIKeySettings(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte("# keys\nci=sha256:"+hash+";q=10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		keys int
		err  string // prefix; "" = valid
	}{
		{"none (default)", map[string]string{}, 0, ""},
		{"API_KEYS", map[string]string{"API_KEYS": "ci=sha256:" + hash}, 1, ""},
		{"API_KEYS_FILE", map[string]string{"API_KEYS_FILE": file, "AUTH_READS": "true"}, 1, ""},
		{"bad entry names API_KEYS and the entry", map[string]string{"API_KEYS": "ci=sha256:" + hash + ",ops=" + hash}, 0, "API_KEYS: entry 2: "},
		{"bad file line", map[string]string{"API_KEYS_FILE": writeFile(t, "ok=sha256:"+hash+"\n\nbad=sha256:"+hash[:10]+"\n")}, 0, "API_KEYS_FILE: "},
		{"missing file", map[string]string{"API_KEYS_FILE": filepath.Join(t.TempDir(), "nope")}, 0, "API_KEYS_FILE: cannot read "},
		{"both", map[string]string{"API_KEYS": "ci=sha256:" + hash, "API_KEYS_FILE": file}, 0, "API_KEYS and API_KEYS_FILE are both set"},
		{"AUTH_READS without keys", map[string]string{"AUTH_READS": "true"}, 0, "AUTH_READS: "},
		{"AUTH_READS not a bool", map[string]string{"AUTH_READS": "yes please"}, 0, "AUTH_READS: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(tt.env)
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("err = %v, want prefix %q", err, tt.err)
				}
				if strings.Contains(err.Error(), hash[:10]) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error shows a hash or spans lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s, err := c.Auth.Load()
			if err != nil || s.Len() != tt.keys {
				t.Fatalf("keys %v, %v; want %d", s, err, tt.keys)
			}
		})
	}
}

func TestDescribeMasksAPIKeys(t *testing.T) {
	c, err := config.Load(map[string]string{"API_KEYS": "ci=sha256:" + hash})
	if err != nil {
		t.Fatal(err)
	}
	d := fmt.Sprintln(c.Describe()...)
	if strings.Contains(d, hash[:16]) || !strings.Contains(d, "API_KEYS xxxxx") {
		t.Fatalf("effective config: %s", d)
	}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
