package config_test

import (
	"strings"
	"testing"

	"github.com/resilientanalytics/ra/services/api/config"
)

func TestCacheMaxBytes(t *testing.T) {
	tests := []struct {
		value string // "" leaves the variable unset
		want  config.ByteSize
		ok    bool
		str   string
	}{
		{"", 64 << 20, true, "64MiB"},
		{"1", 1, true, "1"},
		{"1048576", 1 << 20, true, "1MiB"},
		{"1000", 1000, true, "1000"},
		{"512KiB", 512 << 10, true, "512KiB"},
		{"64MiB", 64 << 20, true, "64MiB"},
		{" 2GiB ", 2 << 30, true, "2GiB"},
		{"1536KiB", 1536 << 10, true, "1536KiB"},
		{"8589934591GiB", 8589934591 << 30, true, "8589934591GiB"},
		{"0", 0, false, ""},
		{"0MiB", 0, false, ""},
		{"-1", 0, false, ""},
		{"-1MiB", 0, false, ""},
		{"8589934592GiB", 0, false, ""},           // 2^63: overflow
		{"9223372036854775808", 0, false, ""},     // MaxInt64 + 1
		{"99999999999999999999KiB", 0, false, ""}, // past int64 before the suffix
		{"64MB", 0, false, ""},
		{"64mib", 0, false, ""},
		{"MiB", 0, false, ""},
		{"1.5MiB", 0, false, ""},
		{"64 MiB", 0, false, ""},
		{"+64", 0, false, ""},
		{"lots", 0, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			env := map[string]string{}
			if tt.value != "" {
				env["CACHE_MAX_BYTES"] = tt.value
			}
			c, err := config.Load(env)
			if !tt.ok {
				if err == nil || !strings.HasPrefix(err.Error(), "CACHE_MAX_BYTES:") || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want one line naming CACHE_MAX_BYTES", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Cache.MaxBytes != tt.want || c.Cache.MaxBytes.String() != tt.str {
				t.Fatalf("MaxBytes = %d (%s), want %d (%s)", int64(c.Cache.MaxBytes), c.Cache.MaxBytes, tt.want, tt.str)
			}
		})
	}
}

func TestCacheMaxBytesValidated(t *testing.T) {
	c, err := config.Load(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []config.ByteSize{0, -1} {
		c.Cache.MaxBytes = v
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "CACHE_MAX_BYTES:") {
			t.Errorf("Validate with %d: %v, want an error naming CACHE_MAX_BYTES", int64(v), err)
		}
	}
}
