package redisclient_test

import (
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/redisclient"
)

func TestOptionsFromURL(t *testing.T) {
	tests := []struct {
		name     string
		url      string
		addr     string
		password string
		db       int
		tls      bool
	}{
		{"plain", "redis://localhost:6379", "localhost:6379", "", 0, false},
		{"password and db", "redis://:s3cret@redis:6380/2", "redis:6380", "s3cret", 2, false},
		{"tls", "rediss://user:pw@cache.example:6379/0", "cache.example:6379", "pw", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := redisclient.Config{URL: tt.url, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			opt, err := c.Options()
			if err != nil {
				t.Fatal(err)
			}
			if opt.Addr != tt.addr || opt.Password != tt.password || opt.DB != tt.db || (opt.TLSConfig != nil) != tt.tls {
				t.Errorf("got addr=%s pw=%q db=%d tls=%v", opt.Addr, opt.Password, opt.DB, opt.TLSConfig != nil)
			}
			if opt.MaxRetries != -1 {
				t.Errorf("MaxRetries = %d, want -1: a retried XADD can be stored twice", opt.MaxRetries)
			}
			if !opt.ContextTimeoutEnabled {
				t.Error("ContextTimeoutEnabled is off")
			}
		})
	}
}

func TestValidateNamesTheVariable(t *testing.T) {
	c := redisclient.Config{URL: "http://nope", DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second}
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "REDIS_URL") {
		t.Errorf("err = %v, want one naming REDIS_URL", err)
	}
	c = redisclient.Config{URL: "redis://x:1", DialTimeout: 0, ReadTimeout: time.Second, WriteTimeout: time.Second}
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "REDIS_DIAL_TIMEOUT") {
		t.Errorf("err = %v, want one naming REDIS_DIAL_TIMEOUT", err)
	}
}

func TestRedactHidesPassword(t *testing.T) {
	got := redisclient.Redact("redis://:s3cret@redis:6379/0")
	if strings.Contains(got, "s3cret") {
		t.Errorf("Redact leaked the password: %s", got)
	}
}
