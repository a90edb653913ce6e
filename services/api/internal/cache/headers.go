package cache

import (
	"math"
	"net/http"
	"strconv"
)

// Recorder counts how results were served (telemetry.Metrics).
type Recorder interface {
	CacheHit()
	CacheMiss()
	CacheStale()
}

// Serve counts r with rec and writes its cache headers, the same for every
// cached endpoint (cache name "api" in RFC 9211 Cache-Status):
//
//	hit    X-Cache: HIT   Cache-Status: api; hit; ttl=42            Cache-Control: max-age=42
//	miss   X-Cache: MISS  Cache-Status: api; fwd=miss; stored       Cache-Control: max-age=60
//	       (";collapsed" when the load was shared with concurrent callers;
//	       no ";stored" when the value was too heavy to keep, Result.NotStored)
//	stale  X-Cache: HIT   Cache-Status: api; hit; ttl=-7; fwd=stale Cache-Control: max-age=0
//
// ttl and max-age are whole seconds, rounded down.
func (r Result[V]) Serve(h http.Header, rec Recorder) {
	ttl := strconv.FormatInt(int64(math.Floor(r.TTL.Seconds())), 10)
	switch r.Status {
	case Hit:
		rec.CacheHit()
		h.Set("X-Cache", "HIT")
		h.Set("Cache-Status", "api; hit; ttl="+ttl)
		h.Set("Cache-Control", "max-age="+ttl)
	case Stale:
		rec.CacheStale()
		h.Set("X-Cache", "HIT")
		h.Set("Cache-Status", "api; hit; ttl="+ttl+"; fwd=stale")
		h.Set("Cache-Control", "max-age=0")
	default:
		rec.CacheMiss()
		cs := "api; fwd=miss; stored"
		if r.NotStored {
			cs = "api; fwd=miss"
		}
		if r.Collapsed {
			cs += "; collapsed"
		}
		h.Set("X-Cache", "MISS")
		h.Set("Cache-Status", cs)
		h.Set("Cache-Control", "max-age="+ttl)
	}
}
