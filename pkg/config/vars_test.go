package config_test

import (
	"fmt"
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
