package config_test

import (
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
