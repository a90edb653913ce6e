package config_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/services/api/config"
)

func TestDefaultsMatchDesign(t *testing.T) {
	c, err := config.Load(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 8000 || c.RateLimit.Max != 5 || c.RateLimit.Window != time.Minute || !c.RateLimit.Enabled ||
		c.Ingest.MaxBatch != 1000 || c.Ingest.MaxBodyBytes != 1<<20 || c.Cache.TTL != time.Minute ||
		c.Cache.StaleMax != 10*time.Minute || c.External.Timeout != 2*time.Second || c.External.FailureRate != 0.5 ||
		c.Circuit.FailureThreshold != 3 || c.Circuit.SuccessThreshold != 1 || c.Circuit.ResetTimeout != 30*time.Second ||
		c.Redis.URL != "redis://localhost:6379" || c.StreamKey != "metrics" {
		t.Errorf("defaults differ from DESIGN.md: %+v", c)
	}
}

func TestInvalidValuesNameTheVariable(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"not an int", map[string]string{"RATE_LIMIT_MAX": "five"}, "RATE_LIMIT_MAX"},
		{"zero max", map[string]string{"RATE_LIMIT_MAX": "0"}, "RATE_LIMIT_MAX"},
		{"bad window", map[string]string{"RATE_LIMIT_WINDOW": "soon"}, "RATE_LIMIT_WINDOW"},
		{"bad cidr", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8,nope"}, "TRUSTED_PROXIES"},
		{"bad url", map[string]string{"REDIS_URL": "http://x"}, "REDIS_URL"},
		{"timeout not below reset", map[string]string{"EXTERNAL_TIMEOUT": "30s"}, "EXTERNAL_TIMEOUT"},
		{"failure rate", map[string]string{"EXTERNAL_FAILURE_RATE": "1.5"}, "EXTERNAL_FAILURE_RATE"},
		{"bad bool", map[string]string{"RATE_LIMIT_ENABLED": "maybe"}, "RATE_LIMIT_ENABLED"},
		{"port", map[string]string{"PORT": "70000"}, "PORT"},
		{"failure rate NaN", map[string]string{"EXTERNAL_FAILURE_RATE": "NaN"}, "EXTERNAL_FAILURE_RATE"},
		{"window overflows", map[string]string{"RATE_LIMIT_WINDOW": "1e300"}, "RATE_LIMIT_WINDOW"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(tt.env)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want+":") {
				t.Fatalf("err = %v, want it to start with %q", err, tt.want+":")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

// The Redis and cache read timeouts are both Go fields named ReadTimeout:
// the error must name the variable that was set, with its value.
func TestSameFieldNameNamesItsOwnVariable(t *testing.T) {
	tests := []struct{ set, other string }{
		{"REDIS_READ_TIMEOUT", "CACHE_READ_TIMEOUT"},
		{"CACHE_READ_TIMEOUT", "REDIS_READ_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.set, func(t *testing.T) {
			_, err := config.Load(map[string]string{tt.set: "abc"})
			if err == nil || !strings.HasPrefix(err.Error(), tt.set+`: invalid value "abc": `) || strings.Contains(err.Error(), tt.other) {
				t.Fatalf("err = %v, want %s: invalid value \"abc\": ...", err, tt.set)
			}
		})
	}
}

func TestValidateRejectsANaNFailureRate(t *testing.T) {
	c, err := config.Load(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	c.External.FailureRate = math.NaN()
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "EXTERNAL_FAILURE_RATE:") {
		t.Errorf("err = %v, want EXTERNAL_FAILURE_RATE refused", err)
	}
}

func TestPlainSecondsAndTrustedProxies(t *testing.T) {
	c, err := config.Load(map[string]string{"RATE_LIMIT_WINDOW": "60", "TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.RateLimit.Window != time.Minute {
		t.Errorf("window = %s", c.RateLimit.Window)
	}
	p, _ := c.RateLimit.Prefixes()
	if len(p) != 2 || p[0].String() != "10.0.0.0/8" || p[1].String() != "192.168.1.1/32" {
		t.Errorf("prefixes = %v", p)
	}
}

func TestDescribeMasksTheRedisPassword(t *testing.T) {
	c, err := config.Load(map[string]string{"REDIS_URL": "redis://:hunter2@redis:6379/0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range c.Describe() {
		if s, ok := v.(string); ok && strings.Contains(s, "hunter2") {
			t.Fatalf("effective config logs the password: %v", c.Describe())
		}
	}
}
