package config_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/resilientanalytics/ra/pkg/config"
)

func TestVars(t *testing.T) {
	got := config.Vars(&sample{})
	want := []config.Var{
		{Name: "X_URL", Default: "redis://localhost:6379", HasDefault: true, Field: "Redis.URL", Secret: "url"},
		{Name: "X_MAX", Default: "5", HasDefault: true, Field: "Max"},
		{Name: "X_WINDOW", Default: "60s", HasDefault: true, Field: "Window"},
		{Name: "X_TOKEN", Field: "Token", Secret: "true"},
	}
	if len(got) != len(want) {
		t.Fatalf("Vars = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Vars[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if names := config.VarNames(sample{}); len(names) != 4 || !names["X_URL"] || !names["X_TOKEN"] {
		t.Errorf("VarNames = %v", names)
	}
	if config.Vars(42) != nil {
		t.Error("Vars(non-struct) should be nil")
	}
}

func ExampleVars() {
	type cfg struct {
		Port int `env:"PORT" envDefault:"8000"`
	}
	for _, v := range config.Vars(cfg{}) {
		fmt.Println(v.Name, v.Default)
	}
	// Output: PORT 8000
}

func TestVarsAndDescribeTakeNamesFromTheLibrary(t *testing.T) {
	want := []config.Var{
		{Name: "REDIS_READ_TIMEOUT", Default: "1s", HasDefault: true, Field: "Redis.ReadTimeout"},
		{Name: "CACHE_READ_TIMEOUT", Default: "2s", HasDefault: true, Field: "Cache.ReadTimeout"},
		{Name: "CACHE_RATE", Default: "0.5", HasDefault: true, Field: "Cache.Rate"},
		{Name: "PEER_READ_TIMEOUT", Default: "3s", HasDefault: true, Field: "Peer.ReadTimeout"},
		{Name: "X_PIN", Field: "Pin", Secret: "true"},
	}
	if got := config.Vars((*twins)(nil)); !slices.Equal(got, want) {
		t.Errorf("Vars = %+v\nwant   %+v", got, want)
	}
	var tw twins
	if err := config.Load(&tw, map[string]string{"CACHE_READ_TIMEOUT": "5", "X_PIN": "1234"}); err != nil {
		t.Fatal(err)
	}
	wantKV := []any{"REDIS_READ_TIMEOUT", "1s", "CACHE_READ_TIMEOUT", "5s", "CACHE_RATE", "0.5", "PEER_READ_TIMEOUT", "3s", "X_PIN", "xxxxx"}
	if got := config.Describe(tw); !slices.Equal(got, wantKV) {
		t.Errorf("Describe = %v\nwant       %v", got, wantKV)
	}
}
