package config_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/config"
)

type inner struct {
	URL string `env:"X_URL" envDefault:"redis://localhost:6379" secret:"url"`
}

type sample struct {
	Redis  inner
	Max    int           `env:"X_MAX" envDefault:"5"`
	Window time.Duration `env:"X_WINDOW" envDefault:"60s"`
	Token  string        `env:"X_TOKEN" secret:"true"`
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, s sample)
	}{
		{name: "defaults", env: map[string]string{}, check: func(t *testing.T, s sample) {
			if s.Max != 5 || s.Window != time.Minute || s.Redis.URL != "redis://localhost:6379" {
				t.Errorf("got %+v", s)
			}
		}},
		{name: "plain seconds", env: map[string]string{"X_WINDOW": "90"}, check: func(t *testing.T, s sample) {
			if s.Window != 90*time.Second {
				t.Errorf("window = %s", s.Window)
			}
		}},
		{name: "go duration", env: map[string]string{"X_WINDOW": "1m30s"}, check: func(t *testing.T, s sample) {
			if s.Window != 90*time.Second {
				t.Errorf("window = %s", s.Window)
			}
		}},
		{name: "bad int names variable", env: map[string]string{"X_MAX": "abc"}, wantErr: `X_MAX: invalid value "abc"`},
		{name: "bad duration names variable", env: map[string]string{"X_WINDOW": "soon"}, wantErr: `X_WINDOW: invalid value "soon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s sample
			err := config.Load(&s, tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want prefix %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func TestDescribeMasksSecrets(t *testing.T) {
	s := sample{Redis: inner{URL: "redis://:hunter2@redis:6379/0"}, Token: "tok"}
	kv := config.Describe(&s)
	got := map[any]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		got[kv[i]] = kv[i+1]
	}
	if got["X_URL"] != "redis://:xxxxx@redis:6379/0" {
		t.Errorf("X_URL = %v, want the password masked", got["X_URL"])
	}
	if got["X_TOKEN"] != "xxxxx" {
		t.Errorf("X_TOKEN = %v, want masked", got["X_TOKEN"])
	}
	if got["X_MAX"] != "0" {
		t.Errorf("X_MAX = %v", got["X_MAX"])
	}
}

// twins has two fields named ReadTimeout (and one more behind envPrefix):
// only the library's field data tells their variables apart.
type twins struct {
	Redis struct {
		ReadTimeout time.Duration `env:"REDIS_READ_TIMEOUT" envDefault:"1s"`
	}
	Cache struct {
		ReadTimeout time.Duration `env:"CACHE_READ_TIMEOUT" envDefault:"2s"`
		Rate        float64       `env:"CACHE_RATE" envDefault:"0.5"`
	}
	Peer struct {
		ReadTimeout time.Duration `env:"READ_TIMEOUT" envDefault:"3s"`
	} `envPrefix:"PEER_"`
	Pin int `env:"X_PIN" secret:"true"`
}

func TestLoadNamesItsOwnVariableAndValue(t *testing.T) {
	const maxDuration = "out of range: a duration is at most ±2562047h47m16s"
	tests := []struct {
		name string
		env  map[string]string
		want string // the whole error
	}{
		{"first twin", map[string]string{"REDIS_READ_TIMEOUT": "abc"},
			`REDIS_READ_TIMEOUT: invalid value "abc": not a duration: use e.g. "60s", "1m30s" or plain seconds "60"`},
		{"second twin", map[string]string{"CACHE_READ_TIMEOUT": "abc"},
			`CACHE_READ_TIMEOUT: invalid value "abc": not a duration: use e.g. "60s", "1m30s" or plain seconds "60"`},
		{"both: the first declared", map[string]string{"CACHE_READ_TIMEOUT": "later", "REDIS_READ_TIMEOUT": "first"},
			`REDIS_READ_TIMEOUT: invalid value "first": not a duration: use e.g. "60s", "1m30s" or plain seconds "60"`},
		{"twin behind a prefix", map[string]string{"PEER_READ_TIMEOUT": "abc"},
			`PEER_READ_TIMEOUT: invalid value "abc": not a duration: use e.g. "60s", "1m30s" or plain seconds "60"`},
		{"after a valid twin", map[string]string{"REDIS_READ_TIMEOUT": "5s", "CACHE_RATE": "x"},
			`CACHE_RATE: invalid value "x": invalid syntax`},
		{"NaN float", map[string]string{"CACHE_RATE": "NaN"}, `CACHE_RATE: invalid value "NaN": not a finite number`},
		{"Inf float", map[string]string{"CACHE_RATE": "Inf"}, `CACHE_RATE: invalid value "Inf": not a finite number`},
		{"+Inf float", map[string]string{"CACHE_RATE": "+Inf"}, `CACHE_RATE: invalid value "+Inf": not a finite number`},
		{"-Inf float", map[string]string{"CACHE_RATE": "-Inf"}, `CACHE_RATE: invalid value "-Inf": not a finite number`},
		{"float beyond float64", map[string]string{"CACHE_RATE": "1e400"}, `CACHE_RATE: invalid value "1e400": value out of range`},
		{"NaN seconds", map[string]string{"CACHE_READ_TIMEOUT": "NaN"}, `CACHE_READ_TIMEOUT: invalid value "NaN": not a finite number of seconds`},
		{"Inf seconds", map[string]string{"CACHE_READ_TIMEOUT": "-Inf"}, `CACHE_READ_TIMEOUT: invalid value "-Inf": not a finite number of seconds`},
		{"seconds overflow", map[string]string{"CACHE_READ_TIMEOUT": "1e300"}, `CACHE_READ_TIMEOUT: invalid value "1e300": ` + maxDuration},
		{"negative seconds overflow", map[string]string{"CACHE_READ_TIMEOUT": "-1e300"}, `CACHE_READ_TIMEOUT: invalid value "-1e300": ` + maxDuration},
		{"seconds beyond float64", map[string]string{"CACHE_READ_TIMEOUT": "1e400"}, `CACHE_READ_TIMEOUT: invalid value "1e400": ` + maxDuration},
		{"one second past the limit", map[string]string{"CACHE_READ_TIMEOUT": "9223372037"}, `CACHE_READ_TIMEOUT: invalid value "9223372037": ` + maxDuration},
		{"Go duration overflow", map[string]string{"CACHE_READ_TIMEOUT": "99999999999h"}, `CACHE_READ_TIMEOUT: invalid value "99999999999h": ` + maxDuration},
		{"secret value not echoed", map[string]string{"X_PIN": "12a4"}, `X_PIN: invalid value "xxxxx": invalid syntax`},
		{"int out of range", map[string]string{"X_PIN": "99999999999999999999"}, `X_PIN: invalid value "xxxxx": value out of range`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tw twins
			err := config.Load(&tw, tt.env)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant  %s", err, tt.want)
			}
		})
	}
}

func TestLoadAcceptsTheLimits(t *testing.T) {
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"2562047h", 2562047 * time.Hour},
		{"9223372036", 9223372036 * time.Second},
		{"-9223372036", -9223372036 * time.Second},
		{"0.3", 300 * time.Millisecond}, // rounded: 0.3 s is 299999999.99999994 ns in float64
		{" 90 ", 90 * time.Second},
		{"-1s", -time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			var tw twins
			if err := config.Load(&tw, map[string]string{"CACHE_READ_TIMEOUT": tt.value}); err != nil {
				t.Fatal(err)
			}
			if tw.Cache.ReadTimeout != tt.want || tw.Redis.ReadTimeout != time.Second || tw.Peer.ReadTimeout != 3*time.Second {
				t.Errorf("read timeouts = %s, %s, %s; want %s for the cache only",
					tw.Redis.ReadTimeout, tw.Cache.ReadTimeout, tw.Peer.ReadTimeout, tt.want)
			}
		})
	}
}

func TestLoadNamesMissingVariables(t *testing.T) {
	type must struct {
		Needed  string `env:"X_NEEDED,required"`
		Present string `env:"X_PRESENT,notEmpty"`
	}
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"required", map[string]string{"X_PRESENT": "p"}, "X_NEEDED: required, but not set"},
		{"not empty", map[string]string{"X_NEEDED": "n", "X_PRESENT": ""}, "X_PRESENT: must not be empty"},
		{"both there", map[string]string{"X_NEEDED": "n", "X_PRESENT": "p"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m must
			err := config.Load(&m, tt.env)
			if tt.want == "" {
				if err != nil || m.Needed != "n" || m.Present != "p" {
					t.Fatalf("err = %v, got %+v", err, m)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestLoadNamesATextUnmarshalersVariable(t *testing.T) {
	var c struct {
		Net netip.Prefix `env:"X_NET"` // a TextUnmarshaler: env parses it without our parsers
	}
	err := config.Load(&c, map[string]string{"X_NET": "nope"})
	if err == nil || !strings.HasPrefix(err.Error(), `X_NET: invalid value "nope": `) {
		t.Fatalf("err = %v, want the variable and value named", err)
	}
	if err := config.Load(&c, map[string]string{"X_NET": "10.0.0.0/8"}); err != nil || c.Net.String() != "10.0.0.0/8" {
		t.Fatalf("valid prefix: %v %v", c.Net, err)
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis://:hunter2@redis:6379/0", "redis://:xxxxx@redis:6379/0"},
		{"rediss://user:pw@cache.example:6379", "rediss://user:xxxxx@cache.example:6379"},
		{"redis://user@redis:6379", "redis://user@redis:6379"},
		{"redis://localhost:6379", "redis://localhost:6379"},
		{"", ""},
		{"redis://u:12/secret@redis:6379", "(unparsable)"}, // unescaped "/" in the password: net/url reads it as a path
		{"redis://u:pw@red is:6379", "(unparsable)"},
	}
	for _, tt := range tests {
		if got := config.RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
