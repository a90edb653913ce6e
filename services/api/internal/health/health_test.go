package health_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/internal/health"
)

type fakeDurability struct {
	mu  sync.Mutex
	d   store.Durability
	err error
}

func (f *fakeDurability) Durability(context.Context) (store.Durability, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.d, f.err
}

var ok = health.PingFunc(func(context.Context) error { return nil })

func get(t *testing.T, c *health.Checker) (int, map[string]any) {
	t.Helper()
	w := httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest("GET", "/health", nil))
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	return w.Code, body
}

// /health reports the durability at the top level on every call, the
// gauge follows it, and a setting weaker than always is warned about once.
func TestHealthReportsDurability(t *testing.T) {
	tests := []struct {
		name string
		d    store.Durability
		err  error
		want string
		warn bool
	}{
		{"always", store.DurabilityAlways, nil, "always", false},
		{"everysec", store.DurabilityEverysec, nil, "everysec", true},
		{"appendfsync no", store.DurabilityNo, nil, "no", true},
		{"appendonly no", store.DurabilityOff, nil, "off", true},
		{"CONFIG refused", store.DurabilityUnknown, nil, "unknown", true},
		{"no answer", store.DurabilityUnknown, store.ErrUnavailable, "unknown", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			reg := prometheus.NewRegistry()
			src := &fakeDurability{d: tt.d, err: tt.err}
			c, err := health.New(ok, health.Options{Durability: src, Registerer: reg, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Start(context.Background()); string(got) != tt.want {
				t.Errorf("Start = %q, want %q", got, tt.want)
			}
			for range 3 {
				code, body := get(t, c)
				if code != 200 || body["durability"] != tt.want || body["status"] != "ok" {
					t.Fatalf("/health %d %v, want 200 with durability %q", code, body, tt.want)
				}
			}
			if warns := strings.Count(logs.String(), `"level":"WARN"`); warns != map[bool]int{true: 1, false: 0}[tt.warn] {
				t.Errorf("%d warnings, want warn=%t: %s", warns, tt.warn, logs.String())
			}
			if tt.err == nil {
				if v := testutil.ToFloat64(gaugeOf(t, reg, tt.want)); v != 1 {
					t.Errorf("gauge for %q = %v, want 1", tt.want, v)
				}
			}
			if c.Durability() != tt.want && tt.err == nil {
				t.Errorf("Durability() = %q", c.Durability())
			}
		})
	}
}

func TestHealthFailingRedis(t *testing.T) {
	src := &fakeDurability{d: store.DurabilityAlways}
	c, err := health.New(health.PingFunc(func(context.Context) error { return errors.New("dial tcp: refused") }), health.Options{Durability: src})
	if err != nil {
		t.Fatal(err)
	}
	code, body := get(t, c)
	if code != 503 || body["durability"] != "unknown" || body["checks"].(map[string]any)["redis"] != "unreachable" {
		t.Fatalf("/health %d %v, want 503 naming redis, durability unknown", code, body)
	}
}

// gaugeOf returns the collector of one setting of ra_api_redis_durability.
func gaugeOf(t *testing.T, reg *prometheus.Registry, setting string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ra_api_redis_durability" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "setting" && l.GetValue() == setting {
					g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
					g.Set(m.GetGauge().GetValue())
					return g
				}
			}
		}
	}
	t.Fatalf("no ra_api_redis_durability{setting=%q}", setting)
	return nil
}
