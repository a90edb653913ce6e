// Package typelist serves GET /api/metrics/types: every metric type the
// aggregator has seen, with its last-seen time (the latest event time of
// any of its metrics), sorted by name and paginated.
//
//	GET /api/metrics/types?limit=100&cursor=…
//	200 {"types":[{"type","last_seen"}...],"next_cursor":"…"}   (next_cursor omitted on the last page)
//	400 problem naming limit or cursor
//	503 problem + Retry-After when Redis fails and nothing is cached
//
// The list is the union of every partition's types set, read
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
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/cache"
	"github.com/resilientanalytics/ra/services/api/internal/fail"
	"github.com/resilientanalytics/ra/services/api/internal/telemetry"
)

// Limits of the limit parameter.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Store lists the known types, merged over every partition and sorted by
// type; *store.Store implements it.
type Store interface {
	Types(ctx context.Context) ([]store.TypeSeen, error)
}

var _ Store = (*store.Store)(nil)

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

// Options configure a Handler.
type Options struct {
	// Cache is CACHE_* (TTL, StaleMax, ReadTimeout).
	Cache config.Cache
	// Metrics may be nil.
	Metrics *telemetry.Metrics
	// Logger receives failures (default: discarded).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Budget is the byte budget (CACHE_MAX_BYTES) the list shares with the
	// api's other caches (default: one of its own).
	Budget *cache.Budget
}

// Handler serves GET /api/metrics/types.
type Handler struct {
	store Store
	opts  Options
	cache *cache.Cache[[]store.TypeSeen]
}

var _ http.Handler = (*Handler)(nil)

// New returns the handler reading st.
func New(st Store, opts Options) (*Handler, error) {
	if st == nil {
		return nil, errors.New("typelist: nil store")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{store: st, opts: opts}
	c, err := cache.NewWeighed(func(ctx context.Context, _ string) ([]store.TypeSeen, error) { return st.Types(ctx) }, weigh,
		cache.Options{TTL: opts.Cache.TTL, StaleMax: opts.Cache.StaleMax, MaxEntries: 1,
			LoadTimeout: opts.Cache.ReadTimeout, Now: opts.Now, Budget: opts.Budget})
	if err != nil {
		return nil, fmt.Errorf("typelist cache: %w", err)
	}
	h.cache = c
	return h, nil
}

// weigh is the cache weight of a list: its backing array and every name.
func weigh(ts []store.TypeSeen) int64 {
	n := int64(cap(ts)) * int64(unsafe.Sizeof(store.TypeSeen{}))
	for _, t := range ts {
		n += int64(len(t.Type))
	}
	return n
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
		fail.Write(w, r, h.opts.Logger, &fail.Error{Code: fail.Invalid,
			Detail: "query parameter " + errs[0].Field + " " + errs[0].Message, Fields: errs})
		return
	}

	res, err := h.cache.Get(r.Context(), "types")
	hdr := w.Header()
	if err != nil {
		cache.ServeError(hdr, h.opts.Metrics, r, err)
		fail.Write(w, r, h.opts.Logger, err)
		return
	}
	all := res.Value
	start, _ := slices.BinarySearchFunc(all, after, func(k store.TypeSeen, t string) int {
		return strings.Compare(k.Type, t)
	})
	if after != "" && start < len(all) && all[start].Type == after {
		start++
	}
	end := min(start+limit, len(all))
	page := Page{Types: make([]Type, 0, end-start)}
	for _, k := range all[start:end] {
		page.Types = append(page.Types, Type{Type: k.Type, LastSeen: metric.FormatMicros(k.LastSeen)})
	}
	if end < len(all) {
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(all[end-1].Type))
	}

	res.Serve(hdr, h.opts.Metrics)
	hdr.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(page)
}
