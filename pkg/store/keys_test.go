package store_test

import (
	"fmt"
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
