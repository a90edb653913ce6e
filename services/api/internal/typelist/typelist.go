// Package typelist serves GET /api/metrics/types: every metric type the
// aggregator has seen, with its last-seen time (the latest event time of
// any of its metrics), sorted by name and paginated.
//
//	GET /api/metrics/types?limit=100&cursor=…
//	200 {"types":[{"type","last_seen"}...],"next_cursor":"…"}   (next_cursor omitted on the last page)
//	400 problem naming limit or cursor
//	503 problem + Retry-After when Redis fails and nothing is cached
//
// The list is the union of every partition's types set (keys.Types), read
// in one pipeline and merged keeping the latest last-seen. The whole sorted
// list is cached (CACHE_TTL, singleflight, stale-if-error; package cache)
// and pages are cut from it, so paging through costs one Redis read per
// TTL. The cursor is the last type of the previous page (base64url): pages
// stay consistent while types are added, and a type added behind the
// cursor shows on the next pass.
package typelist

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/keys"
	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/problem"
	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/cache"
	"github.com/resilientanalytics/ra/services/api/internal/telemetry"
)

// Limits of the limit parameter.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// RetryAfter is the Retry-After (seconds) of a 503.
const RetryAfter = "1"

// Type is one entry of the list.
type Type struct {
	Type     string `json:"type"`
	LastSeen string `json:"last_seen"`
}

// Page is the 200 body.
type Page struct {
	Types      []Type `json:"types"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// known is one type with its last-seen time in Unix microseconds.
type known struct {
	name string
	last int64
}

// Options configure a Handler.
type Options struct {
	// Partitions is STREAM_PARTITIONS: the list merges 0..Partitions-1.
	Partitions int
	// Cache is CACHE_* (TTL, StaleMax, ReadTimeout).
	Cache config.Cache
	// Metrics may be nil.
	Metrics *telemetry.Metrics
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Budget is the byte budget (CACHE_MAX_BYTES) the list shares with the
	// api's other caches (default: one of its own).
	Budget *cache.Budget
}

// Handler serves GET /api/metrics/types.
type Handler struct {
	rdb   redis.UniversalClient
	keys  keys.Keys
	opts  Options
	cache *cache.Cache[[]known]
}

var _ http.Handler = (*Handler)(nil)

// New returns the handler reading rdb (keys k).
func New(rdb redis.UniversalClient, k keys.Keys, opts Options) (*Handler, error) {
	if rdb == nil {
		return nil, errors.New("typelist: nil redis client")
	}
	if opts.Partitions == 0 {
		opts.Partitions = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{rdb: rdb, keys: k, opts: opts}
	c, err := cache.NewWeighed(h.load, weigh, cache.Options{TTL: opts.Cache.TTL, StaleMax: opts.Cache.StaleMax, MaxEntries: 1,
		LoadTimeout: opts.Cache.ReadTimeout, Now: opts.Now, Budget: opts.Budget})
	if err != nil {
		return nil, fmt.Errorf("typelist cache: %w", err)
	}
	h.cache = c
	return h, nil
}

// weigh is the cache weight of a list: its backing array and every name.
func weigh(ts []known) int64 {
	n := int64(cap(ts)) * int64(unsafe.Sizeof(known{}))
	for _, t := range ts {
		n += int64(len(t.name))
	}
	return n
}

// load reads every partition's types set in one pipeline and merges them.
func (h *Handler) load(ctx context.Context, _ string) ([]known, error) {
	cmds := make([]*redis.ZSliceCmd, h.opts.Partitions)
	_, err := h.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for part := range cmds {
			cmds[part] = p.ZRangeWithScores(ctx, h.keys.Types(part), 0, -1)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read types: %w", err)
	}
	last := make(map[string]int64)
	for _, c := range cmds {
		for _, z := range c.Val() {
			name, _ := z.Member.(string)
			if cur, ok := last[name]; !ok || int64(z.Score) > cur {
				last[name] = int64(z.Score)
			}
		}
	}
	out := make([]known, 0, len(last))
	for name, us := range last {
		out = append(out, known{name, us})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// ServeHTTP answers GET /api/metrics/types.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var errs []metric.FieldError
	limit := DefaultLimit
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > MaxLimit {
			errs = append(errs, metric.FieldError{Field: "limit", Message: fmt.Sprintf("must be an integer from 1 to %d", MaxLimit)})
		}
		limit = n
	}
	after := ""
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || metric.ValidType(string(b)) != "" {
			errs = append(errs, metric.FieldError{Field: "cursor", Message: "is not a cursor this api returned (use next_cursor of the previous page)"})
		}
		after = string(b)
	}
	if len(errs) > 0 {
		p := problem.New(http.StatusBadRequest, "validation-error", "Invalid request", "query parameter "+errs[0].Field+" "+errs[0].Message)
		p.Errors = errs
		problem.Write(w, r, p)
		return
	}

	res, err := h.cache.Get(r.Context(), "types")
	hdr := w.Header()
	if err != nil {
		h.opts.Metrics.CacheMiss()
		hdr.Set("X-Cache", "MISS")
		hdr.Set("Cache-Status", "api; fwd=miss; detail=store-unavailable")
		hdr.Set("Retry-After", RetryAfter)
		slog.WarnContext(r.Context(), "types read failed and nothing is cached", "err", err)
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "service-unavailable",
			"Service unavailable", "the metrics store is unavailable; retry shortly"))
		return
	}
	all := res.Value
	start, _ := slices.BinarySearchFunc(all, after, func(k known, t string) int {
		switch {
		case k.name < t:
			return -1
		case k.name > t:
			return 1
		}
		return 0
	})
	if after != "" && start < len(all) && all[start].name == after {
		start++
	}
	end := min(start+limit, len(all))
	page := Page{Types: make([]Type, 0, end-start)}
	for _, k := range all[start:end] {
		page.Types = append(page.Types, Type{Type: k.name, LastSeen: metric.FormatMicros(k.last)})
	}
	if end < len(all) {
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(all[end-1].name))
	}

	res.Serve(hdr, h.opts.Metrics)
	hdr.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(page)
}
