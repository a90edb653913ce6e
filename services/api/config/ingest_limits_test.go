package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/services/api/config"
)

func TestIngestValueAndFutureBounds(t *testing.T) {
	c, err := config.Load(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Ingest.MaxAbsValue != 1e18 || c.Ingest.MaxFuture != 10*time.Minute {
		t.Errorf("defaults: INGEST_MAX_ABS_VALUE=%v INGEST_MAX_FUTURE=%s", c.Ingest.MaxAbsValue, c.Ingest.MaxFuture)
	}
	c, err = config.Load(map[string]string{"INGEST_MAX_ABS_VALUE": "1e6", "INGEST_MAX_FUTURE": "1h"})
	if err != nil || c.Ingest.MaxAbsValue != 1e6 || c.Ingest.MaxFuture != time.Hour {
		t.Errorf("set values: %v %s %v", c.Ingest.MaxAbsValue, c.Ingest.MaxFuture, err)
	}
	for _, tt := range []struct{ name, v, value string }{
		{"NaN", "INGEST_MAX_ABS_VALUE", "NaN"},
		{"infinite", "INGEST_MAX_ABS_VALUE", "+Inf"},
		{"zero", "INGEST_MAX_ABS_VALUE", "0"},
		{"negative", "INGEST_MAX_ABS_VALUE", "-5"},
		{"not a number", "INGEST_MAX_ABS_VALUE", "big"},
		{"zero future", "INGEST_MAX_FUTURE", "0s"},
		{"negative future", "INGEST_MAX_FUTURE", "-1m"},
		{"not a duration", "INGEST_MAX_FUTURE", "soon"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(map[string]string{tt.v: tt.value})
			if err == nil || !strings.Contains(err.Error(), tt.v) {
				t.Fatalf("%s=%s: err = %v, want one naming the variable", tt.v, tt.value, err)
			}
		})
	}
}

func TestMaxTypes(t *testing.T) {
	tests := []struct {
		name, value string
		want        int // 0 = rejected, naming MAX_TYPES
	}{
		{"default", "", 10000},
		{"set", "3", 3},
		{"one", "1", 1},
		{"zero", "0", 0},
		{"negative", "-1", 0},
		{"not a number", "many", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			if tt.value != "" {
				env["MAX_TYPES"] = tt.value
			}
			c, err := config.Load(env)
			if tt.want == 0 {
				if err == nil || !strings.Contains(err.Error(), "MAX_TYPES") {
					t.Fatalf("MAX_TYPES=%s: err = %v, want one naming the variable", tt.value, err)
				}
				return
			}
			if err != nil || c.Ingest.MaxTypes != tt.want {
				t.Fatalf("MAX_TYPES=%q: %d, %v; want %d", tt.value, c.Ingest.MaxTypes, err, tt.want)
			}
		})
	}
}
