package store_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/resilientanalytics/ra/pkg/store"
)

func TestKeysShareThePartitionHashTag(t *testing.T) {
	k := store.NewKeys("")
	tests := []struct {
		name, got, want string
	}{
		{"stream", k.Stream(0), "{metrics:0}:stream"},
		{"summary", k.Summary(0, "cpu_usage"), "{metrics:0}:summary:cpu_usage"},
		{"dead", k.Dead(0), "{metrics:0}:dead"},
		{"rate limit", k.RateLimit(0, "10.0.0.1"), "{metrics:0}:rl:10.0.0.1"},
		{"admitted types", k.AdmittedTypes(2), "{metrics:2}:admitted"},
		{"other family and partition", store.NewKeys("m2").Stream(3), "{m2:3}:stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func ExampleKeys_Stream() {
	k := store.NewKeys("metrics")
	fmt.Println(k.Stream(0))
	fmt.Println(k.Summary(0, "cpu_usage"))
	// Output:
	// {metrics:0}:stream
	// {metrics:0}:summary:cpu_usage
}

// An Idempotency-Key record carries its partition's hash tag, and its name
// depends on both the client and the key, so clients never share a record
// however their names and keys are chosen.
func TestIdempotencyKeyNames(t *testing.T) {
	k := store.NewKeys("")
	a := k.Idempotency(2, "key:ingest", "k1")
	if !strings.HasPrefix(a, "{metrics:2}:idem:") || len(a) != len("{metrics:2}:idem:")+64 {
		t.Fatalf("record key %q: want {metrics:2}:idem:<64 hex digits>", a)
	}
	for _, other := range []string{
		k.Idempotency(2, "key:ingest", "k2"),
		k.Idempotency(2, "key:ingest-other", "k1"),
		k.Idempotency(2, "key:ingestk", "1"), // the same bytes, cut elsewhere
		k.Idempotency(3, "key:ingest", "k1"),
	} {
		if other == a {
			t.Errorf("%q is shared by two (client, key) pairs", a)
		}
	}
	if k.Idempotency(2, "key:ingest", "k1") != a {
		t.Error("not deterministic")
	}
}

func ExampleKeys_Idempotency() {
	k := store.NewKeys("metrics")
	fmt.Println(k.Idempotency(0, "203.0.113.7", "8e03978e-40d5-43e8-bc93-6894a57f9324")[:17])
	// Output:
	// {metrics:0}:idem:
}
