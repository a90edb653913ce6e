package redisclient_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

func TestClusterOptionsFromURL(t *testing.T) {
	c := redisclient.Config{URL: "redis://:pw@n1:7000?addr=n2:7001&addr=n3:7002", Cluster: true,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: time.Second}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	opt, err := c.ClusterOptions()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(opt.Addrs, ","); got != "n1:7000,n2:7001,n3:7002" {
		t.Errorf("addrs = %s", got)
	}
	if opt.Password != "pw" {
		t.Errorf("password = %q", opt.Password)
	}
	if opt.MaxRetries != -1 || opt.MaxRedirects != -1 {
		t.Errorf("MaxRetries = %d, MaxRedirects = %d, want -1, -1: go-redis re-sends a timed-out script within the redirect budget",
			opt.MaxRetries, opt.MaxRedirects)
	}
	if !opt.ContextTimeoutEnabled || opt.ReadTimeout != 2*time.Second || opt.DialerRetries != 1 {
		t.Errorf("timeouts not applied: %+v", opt)
	}
	rdb, err := redisclient.New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Errorf("New returned %T, want *redis.ClusterClient", rdb)
	}
	c.URL = "http://n1:7000"
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "REDIS_URL") {
		t.Errorf("a non-redis cluster URL: err = %v, want one naming REDIS_URL", err)
	}
}
