package server_test

import (
	"strings"
	"testing"
)

// MAX_TYPES at its edge through the api: the last free type is accepted,
// one past it is a 422 type-limit-reached naming the type, the item and the
// cap, with nothing stored; known types keep being accepted.
func TestMaxTypesIs422AtTheEdge(t *testing.T) {
	e := start(t, map[string]string{"MAX_TYPES": "2", "RATE_LIMIT_MAX": "100"})
	one := func(typ string) string {
		return `{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"` + typ + `"}`
	}
	tests := []struct {
		name   string
		body   string
		status int
		field  string // errors[0].field of a 422
		named  string // the type the 422's detail names
	}{
		{"first type", one("a"), 201, "", ""},
		{"last free type", one("b"), 201, "", ""},
		{"one past the cap", one("c"), 422, "type", "c"},
		{"a batch with one new type", "[" + one("a") + "," + one("b") + "," + one("d") + "]", 422, "[2].type", "d"},
		{"known types at the cap", "[" + one("b") + "," + one("a") + "]", 201, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.streamLen(t)
			r := e.post(t, tt.body)
			if r.status != tt.status {
				t.Fatalf("%d %v, want %d", r.status, r.body, tt.status)
			}
			if tt.status != 422 {
				return
			}
			if typ, _ := r.body["type"].(string); !strings.HasSuffix(typ, "/type-limit-reached") {
				t.Errorf("problem type %q", typ)
			}
			detail, _ := r.body["detail"].(string)
			if !strings.Contains(detail, `"`+tt.named+`"`) || !strings.Contains(detail, "2") || !strings.Contains(detail, "MAX_TYPES") {
				t.Errorf("detail %q does not name the type and the cap", detail)
			}
			errs, _ := r.body["errors"].([]any)
			if len(errs) != 1 || errs[0].(map[string]any)["field"] != tt.field {
				t.Errorf("errors %v, want the field %s", errs, tt.field)
			}
			if after := e.streamLen(t); after != before {
				t.Errorf("a refused request stored %d entries", after-before)
			}
		})
	}
}
