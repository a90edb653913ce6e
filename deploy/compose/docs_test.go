package compose

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOperationsDocListsEveryVariable keeps the configuration table of
// docs/operations.md in step with the config structs: every variable a
// service reads is listed for that service with its default, and the table
// lists nothing the services do not read.
func TestOperationsDocListsEveryVariable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ services, def string }
	rows := map[string]row{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 4 {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[0]), "`")
		if name != strings.ToUpper(name) || strings.ContainsAny(name, " /") {
			continue // another table (probes, failures)
		}
		rows[name] = row{services: strings.TrimSpace(cells[1]), def: strings.Trim(strings.TrimSpace(cells[2]), "`")}
	}
	known := map[string]bool{}
	for svc, vars := range serviceVars() {
		for _, v := range vars {
			known[v.Name] = true
			r, ok := rows[v.Name]
			if !ok {
				t.Errorf("docs/operations.md does not list %s (%s, default %q)", v.Name, svc, v.Default)
				continue
			}
			if !strings.Contains(r.services, svc) {
				t.Errorf("docs/operations.md: %s is read by %s, table says %q", v.Name, svc, r.services)
			}
			want := v.Default
			if want == "" {
				want = "(empty)"
			}
			if r.def != want {
				t.Errorf("docs/operations.md: %s default %q, the %s config says %q", v.Name, r.def, svc, want)
			}
		}
	}
	for name := range rows {
		if !known[name] {
			t.Errorf("docs/operations.md lists %s, which no service reads", name)
		}
	}
}
