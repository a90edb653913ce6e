package cache

import (
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/resilientanalytics/ra/pkg/store"
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

// ServeError counts a failed Get with rec and writes the cache headers of
// its answer: not found and cancelled requests are plain misses, a corrupt
// hash and a store failure say so in Cache-Status.
func ServeError(h http.Header, rec Recorder, r *http.Request, err error) {
	rec.CacheMiss()
	h.Set("X-Cache", "MISS")
	switch {
	case errors.Is(err, ErrNotFound), r.Context().Err() != nil:
		h.Set("Cache-Status", "api; fwd=miss")
	case errors.Is(err, store.ErrCorrupt):
		h.Set("Cache-Status", "api; fwd=miss; detail=corrupt")
	default:
		h.Set("Cache-Status", "api; fwd=miss; detail=store-unavailable")
	}
}
