package cache_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/services/api/internal/cache"
)

type counts struct{ hit, miss, stale int }

func (c *counts) CacheHit()   { c.hit++ }
func (c *counts) CacheMiss()  { c.miss++ }
func (c *counts) CacheStale() { c.stale++ }

func TestServeHeaders(t *testing.T) {
	tests := []struct {
		name                   string
		res                    cache.Result[int]
		xcache, status, maxAge string
		want                   counts
	}{
		{"hit", cache.Result[int]{Status: cache.Hit, TTL: 42900 * time.Millisecond}, "HIT", "api; hit; ttl=42", "max-age=42", counts{hit: 1}},
		{"miss", cache.Result[int]{Status: cache.Miss, TTL: time.Minute}, "MISS", "api; fwd=miss; stored", "max-age=60", counts{miss: 1}},
		{"collapsed miss", cache.Result[int]{Status: cache.Miss, TTL: time.Minute, Collapsed: true}, "MISS", "api; fwd=miss; stored; collapsed", "max-age=60", counts{miss: 1}},
		{"miss not stored", cache.Result[int]{Status: cache.Miss, TTL: time.Minute, NotStored: true}, "MISS", "api; fwd=miss", "max-age=60", counts{miss: 1}},
		{"stale", cache.Result[int]{Status: cache.Stale, TTL: -6500 * time.Millisecond}, "HIT", "api; hit; ttl=-7; fwd=stale", "max-age=0", counts{stale: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			var c counts
			tt.res.Serve(h, &c)
			if h.Get("X-Cache") != tt.xcache || h.Get("Cache-Status") != tt.status || h.Get("Cache-Control") != tt.maxAge || c != tt.want {
				t.Fatalf("headers %v counts %+v", h, c)
			}
		})
	}
}
