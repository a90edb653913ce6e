// Package summary serves GET /api/metrics/summary?type=…: the aggregator's
// all-time summary of one metric type, read from its Redis hashes (one per
// partition, all read in one pipeline and merged) through the in-process
// TTL cache (package cache). A request with from, to or window is a
// windowed summary and goes to Options.Windowed (package series).
//
// Responses:
//
//	200 {"type","count","average_value","min_value","max_value","sum",
//	     "first_timestamp","last_timestamp"}     fresh, loaded or stale
//	400 problem, errors[0].field == "type"       missing or invalid type
//	404 problem                                  never aggregated (not cached)
//	503 problem + Retry-After                    Redis failed, nothing cached
//	500 problem                                  the hash is corrupt, nothing cached
//
// Cache headers (RFC 9211 Cache-Status, cache name "api"):
//
//	hit    X-Cache: HIT   Cache-Status: api; hit; ttl=42            Cache-Control: max-age=42
//	miss   X-Cache: MISS  Cache-Status: api; fwd=miss; stored       Cache-Control: max-age=60
//	       (";collapsed" is appended when the read was shared with concurrent requests)
//	stale  X-Cache: HIT   Cache-Status: api; hit; ttl=-7; fwd=stale Cache-Control: max-age=0
//
// ttl and max-age are whole seconds, rounded down. Ingest does not
// invalidate the cache: a summary is at most CACHE_TTL old.
package summary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/cache"
	"github.com/resilientanalytics/ra/services/api/internal/fail"
	"github.com/resilientanalytics/ra/services/api/internal/telemetry"
	"github.com/resilientanalytics/ra/services/api/internal/window"
)

// Store reads the all-time summary of a type, merged over every
// partition; *store.Store implements it.
type Store interface {
	Summary(ctx context.Context, typ string) (s store.Summary, found bool, err error)
}

var _ Store = (*store.Store)(nil)

// Response is the 200 body.
type Response struct {
	Type           string  `json:"type"`
	Count          int64   `json:"count"`
	AverageValue   float64 `json:"average_value"`
	MinValue       float64 `json:"min_value"`
	MaxValue       float64 `json:"max_value"`
	Sum            float64 `json:"sum"`
	FirstTimestamp string  `json:"first_timestamp"`
	LastTimestamp  string  `json:"last_timestamp"`
}

// Handler serves GET /api/metrics/summary. It caches the encoded 200 body,
// so a hit writes bytes without encoding.
type Handler struct {
	store    Store
	m        *telemetry.Metrics
	log      *slog.Logger
	cache    *cache.Cache[[]byte]
	windowed http.Handler
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns the summary handler reading st through a cache
// configured by cfg (CACHE_*). m may be nil.
func NewHandler(st Store, cfg config.Cache, m *telemetry.Metrics, opts Options) (*Handler, error) {
	h, err := newHandler(st, cfg, m, time.Now, opts.Budget)
	if err != nil {
		return nil, err
	}
	h.windowed = opts.Windowed
	if opts.Logger != nil {
		h.log = opts.Logger
	}
	return h, nil
}

// Options are the handler's optional collaborators.
type Options struct {
	// Windowed answers requests with from, to or window (the windowed
	// summary); without it they are answered as all-time summaries.
	Windowed http.Handler
	// Logger receives failures and stale answers (default: discarded).
	Logger *slog.Logger
	// Budget is the byte budget (CACHE_MAX_BYTES) the cache shares with
	// the api's other caches (default: one of its own).
	Budget *cache.Budget
}

func newHandler(st Store, cfg config.Cache, m *telemetry.Metrics, now func() time.Time, budget *cache.Budget) (*Handler, error) {
	if st == nil {
		return nil, errors.New("summary: nil store")
	}
	h := &Handler{store: st, m: m, log: slog.New(slog.DiscardHandler)}
	c, err := cache.New(h.load, cache.Options{
		TTL:         cfg.TTL,
		StaleMax:    cfg.StaleMax,
		MaxEntries:  cfg.MaxEntries,
		LoadTimeout: cfg.ReadTimeout,
		Now:         now,
		Budget:      budget,
	})
	if err != nil {
		return nil, fmt.Errorf("summary cache: %w", err)
	}
	h.cache = c
	return h, nil
}

// Fresh reads and encodes typ's summary from Redis, bypassing the cache,
// for the dashboard's live stream; cache.ErrNotFound when typ was never
// aggregated.
func (h *Handler) Fresh(ctx context.Context, typ string) ([]byte, error) { return h.load(ctx, typ) }

// load reads the merged summary of typ and encodes it;
// cache.ErrNotFound when the type has never been aggregated.
func (h *Handler) load(ctx context.Context, typ string) ([]byte, error) {
	s, found, err := h.store.Summary(ctx, typ)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, cache.ErrNotFound
	}
	return json.Marshal(Response{
		Type:           typ,
		Count:          s.Count,
		AverageValue:   s.Average(),
		MinValue:       s.Min,
		MaxValue:       s.Max,
		Sum:            s.Sum,
		FirstTimestamp: metric.FormatMicros(s.FirstTS),
		LastTimestamp:  metric.FormatMicros(s.LastTS),
	})
}

// ServeHTTP answers GET /api/metrics/summary?type=….
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.windowed != nil && window.HasRange(r.URL.Query()) {
		h.windowed.ServeHTTP(w, r)
		return
	}
	typ := r.URL.Query().Get("type")
	if msg := metric.ValidType(typ); msg != "" {
		if typ == "" {
			msg = "is required"
		}
		fail.Write(w, r, h.log, &fail.Error{Code: fail.Invalid, Detail: "query parameter type " + msg,
			Fields: []metric.FieldError{{Field: "type", Message: msg}}})
		return
	}

	res, err := h.cache.Get(r.Context(), typ)
	hdr := w.Header()
	if err != nil {
		cache.ServeError(hdr, h.m, r, err)
		if errors.Is(err, cache.ErrNotFound) {
			err = &fail.Error{Code: fail.NotFound, Title: "Summary not found",
				Detail: "no metric of type " + strconv.Quote(typ) + " has been aggregated yet"}
		}
		fail.Write(w, r, h.log, err)
		return
	}
	res.Serve(hdr, h.m)
	if res.Status == cache.Stale {
		h.log.WarnContext(r.Context(), "serving stale summary", "request_id", hdr.Get("X-Request-Id"), "type", typ, "expired_ago", -res.TTL, "err", res.Err)
	}
	hdr.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Value)
}
