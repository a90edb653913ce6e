package telemetry

import (
	"strings"
	"testing"
)

type fakeBudget struct{ used, max int64 }

func (b *fakeBudget) Bytes() int64 { return b.used }
func (b *fakeBudget) Max() int64   { return b.max }

func TestCacheBudgetGauges(t *testing.T) {
	m := New()
	b := &fakeBudget{max: 64 << 20}
	steps := []struct {
		name string
		set  bool
		used int64
		want []string
	}{
		{"before a budget is set", false, 0, []string{"ra_api_cache_bytes 0", "ra_api_cache_max_bytes 0"}},
		{"empty budget", true, 0, []string{"ra_api_cache_bytes 0", "ra_api_cache_max_bytes 6.7108864e+07"}},
		{"read at scrape time", false, 12345, []string{"ra_api_cache_bytes 12345", "ra_api_cache_max_bytes 6.7108864e+07"}},
	}
	for _, s := range steps {
		if s.set {
			m.SetCacheBudget(b)
		}
		b.used = s.used
		text := scrape(t, m)
		for _, want := range s.want {
			if !strings.Contains(text, want+"\n") {
				t.Errorf("%s: /metrics lacks %q", s.name, want)
			}
		}
	}
	var nilMetrics *Metrics
	nilMetrics.SetCacheBudget(b)
	m.SetCacheBudget(nil) // ignored: keeps reporting b
	if !strings.Contains(scrape(t, m), "ra_api_cache_bytes 12345\n") {
		t.Error("SetCacheBudget(nil) dropped the budget")
	}
}
