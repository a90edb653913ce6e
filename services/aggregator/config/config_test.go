package config_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/services/aggregator/config"
)

func TestDefaultsMatchDesign(t *testing.T) {
	c, err := config.Load(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.StreamKey != "metrics" || c.Group != "aggregators" || c.BatchSize != 256 || c.Block != 2*time.Second ||
		c.ClaimInterval != 5*time.Second || c.ClaimMinIdle != 30*time.Second || c.MaxDeliveries != 10 ||
		c.DeadLetterMax != 100000 || c.Retention != 24*time.Hour || c.TrimInterval != time.Minute ||
		c.HealthPort != 8001 || c.LogLevel != "info" || c.ShutdownTimeout != 10*time.Second ||
		c.Redis.URL != "redis://localhost:6379" {
		t.Errorf("defaults differ from DESIGN.md: %+v", c)
	}
	if c.Consumer != config.DefaultConsumer() || !strings.HasSuffix(c.Consumer, "-"+fmt.Sprint(os.Getpid())) {
		t.Errorf("consumer = %q, want hostname-pid", c.Consumer)
	}
}

func TestExplicitConsumerAndPlainSeconds(t *testing.T) {
	c, err := config.Load(map[string]string{"CONSUMER_NAME": "agg-1", "AGG_BLOCK": "0.5", "STREAM_RETENTION": "0"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Consumer != "agg-1" || c.Block != 500*time.Millisecond || c.Retention != 0 {
		t.Errorf("got %+v", c)
	}
}

func TestInvalidValuesNameTheVariable(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"block zero waits forever", map[string]string{"AGG_BLOCK": "0"}, "AGG_BLOCK"},
		{"block not a duration", map[string]string{"AGG_BLOCK": "soon"}, "AGG_BLOCK"},
		{"batch zero", map[string]string{"AGG_BATCH_SIZE": "0"}, "AGG_BATCH_SIZE"},
		{"batch not int", map[string]string{"AGG_BATCH_SIZE": "many"}, "AGG_BATCH_SIZE"},
		{"claim interval", map[string]string{"AGG_CLAIM_INTERVAL": "-1s"}, "AGG_CLAIM_INTERVAL"},
		{"claim min idle", map[string]string{"AGG_CLAIM_MIN_IDLE": "0s"}, "AGG_CLAIM_MIN_IDLE"},
		{"max deliveries", map[string]string{"AGG_MAX_DELIVERIES": "0"}, "AGG_MAX_DELIVERIES"},
		{"dead letter max", map[string]string{"DEAD_LETTER_MAX": "0"}, "DEAD_LETTER_MAX"},
		{"retention negative", map[string]string{"STREAM_RETENTION": "-1h"}, "STREAM_RETENTION"},
		{"trim interval", map[string]string{"AGG_TRIM_INTERVAL": "0"}, "AGG_TRIM_INTERVAL"},
		{"health port", map[string]string{"AGG_HEALTH_PORT": "70000"}, "AGG_HEALTH_PORT"},
		{"stream key braces", map[string]string{"STREAM_KEY": "{x}"}, "STREAM_KEY"},
		{"group with space", map[string]string{"CONSUMER_GROUP": "a b"}, "CONSUMER_GROUP"},
		{"consumer spaces", map[string]string{"CONSUMER_NAME": "a b"}, "CONSUMER_NAME"},
		{"log level", map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{"shutdown", map[string]string{"SHUTDOWN_TIMEOUT": "0"}, "SHUTDOWN_TIMEOUT"},
		{"bad url", map[string]string{"REDIS_URL": "http://x"}, "REDIS_URL"},
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

func TestDescribeMasksRedisPassword(t *testing.T) {
	c, err := config.Load(map[string]string{"REDIS_URL": "redis://:s3cret@redis:6379/0", "CONSUMER_NAME": "a"})
	if err != nil {
		t.Fatal(err)
	}
	kv := c.Describe()
	got := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		got[kv[i].(string)] = fmt.Sprint(kv[i+1])
	}
	if strings.Contains(fmt.Sprint(kv...), "s3cret") {
		t.Errorf("Describe leaked the password: %v", kv)
	}
	for _, name := range []string{"REDIS_URL", "STREAM_KEY", "CONSUMER_GROUP", "CONSUMER_NAME", "AGG_BATCH_SIZE", "AGG_BLOCK",
		"AGG_CLAIM_INTERVAL", "AGG_CLAIM_MIN_IDLE", "AGG_MAX_DELIVERIES", "DEAD_LETTER_MAX", "STREAM_RETENTION",
		"AGG_TRIM_INTERVAL", "AGG_HEALTH_PORT", "LOG_LEVEL", "SHUTDOWN_TIMEOUT"} {
		if _, ok := got[name]; !ok {
			t.Errorf("Describe lacks %s", name)
		}
	}
}
