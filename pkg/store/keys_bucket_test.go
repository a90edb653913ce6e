package store_test

import (
	"fmt"
	"testing"

	"github.com/resilientanalytics/ra/pkg/store"
)

func TestBucketAndTypesKeys(t *testing.T) {
	k := store.NewKeys("")
	if got, want := k.Bucket(0, "cpu_usage", 492000), "{metrics:0}:bucket:cpu_usage:492000"; got != want {
		t.Errorf("bucket %q, want %q", got, want)
	}
	if got, want := store.NewKeys("m2").Types(3), "{m2:3}:types"; got != want {
		t.Errorf("types %q, want %q", got, want)
	}
}

func ExampleKeys_Bucket() {
	k := store.NewKeys("metrics")
	fmt.Println(k.Bucket(0, "cpu_usage", 1771149600/3600))
	fmt.Println(k.Types(0))
	// Output:
	// {metrics:0}:bucket:cpu_usage:491986
	// {metrics:0}:types
}
