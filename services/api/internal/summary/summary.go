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

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/keys"
	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/problem"
	sumhash "github.com/resilientanalytics/ra/pkg/summary"
	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/cache"
	"github.com/resilientanalytics/ra/services/api/internal/telemetry"
	"github.com/resilientanalytics/ra/services/api/internal/window"
)

// RetryAfter is the Retry-After (seconds) of a 503.
const RetryAfter = "1"

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
	rdb        redis.UniversalClient
	keys       keys.Keys
	m          *telemetry.Metrics
	cache      *cache.Cache[[]byte]
	partitions int
	windowed   http.Handler
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns the summary handler reading rdb (partitions
// 0..opts.Partitions-1 of k) through a cache configured by cfg (CACHE_*).
// m may be nil.
func NewHandler(rdb redis.UniversalClient, k keys.Keys, cfg config.Cache, m *telemetry.Metrics, opts Options) (*Handler, error) {
	h, err := newHandler(rdb, k, cfg, m, time.Now)
	if err != nil {
		return nil, err
	}
	if opts.Partitions >= 1 {
		h.partitions = opts.Partitions
	}
	h.windowed = opts.Windowed
	return h, nil
}

// Options are the handler's optional collaborators.
type Options struct {
	// Partitions is STREAM_PARTITIONS: every read merges partitions
	// 0..Partitions-1 (default 1).
	Partitions int
	// Windowed answers requests with from, to or window (the windowed
	// summary); without it they are answered as all-time summaries.
	Windowed http.Handler
}

func newHandler(rdb redis.UniversalClient, k keys.Keys, cfg config.Cache, m *telemetry.Metrics, now func() time.Time) (*Handler, error) {
	if rdb == nil {
		return nil, errors.New("summary: nil redis client")
	}
	h := &Handler{rdb: rdb, keys: k, m: m, partitions: 1}
	c, err := cache.New(h.load, cache.Options{
		TTL:         cfg.TTL,
		StaleMax:    cfg.StaleMax,
		MaxEntries:  cfg.MaxEntries,
		LoadTimeout: cfg.ReadTimeout,
		Now:         now,
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

// load reads every partition's summary of typ in one pipeline, merges and
// encodes them; cache.ErrNotFound when the type has never been aggregated.
func (h *Handler) load(ctx context.Context, typ string) ([]byte, error) {
	cmds := make([]*redis.MapStringStringCmd, h.partitions)
	_, err := h.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for part := range cmds {
			cmds[part] = p.HGetAll(ctx, h.keys.Summary(part, typ))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read summary of %q: %w", typ, err)
	}
	var s sumhash.Summary
	found := false
	for _, c := range cmds {
		one, ok, err := sumhash.FromHash(c.Val())
		if err != nil {
			return nil, fmt.Errorf("decode summary of %q: %w", typ, err)
		}
		found = found || ok
		s = s.Merge(one)
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
		p := problem.New(http.StatusBadRequest, "validation-error", "Invalid request",
			"query parameter type "+msg)
		p.Errors = []metric.FieldError{{Field: "type", Message: msg}}
		problem.Write(w, r, p)
		return
	}

	res, err := h.cache.Get(r.Context(), typ)
	hdr := w.Header()
	if err != nil {
		h.m.CacheMiss()
		hdr.Set("X-Cache", "MISS")
		switch {
		case errors.Is(err, cache.ErrNotFound):
			hdr.Set("Cache-Status", "api; fwd=miss")
			problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "Summary not found",
				"no metric of type "+strconv.Quote(typ)+" has been aggregated yet"))
		case errors.Is(err, sumhash.ErrCorrupt):
			hdr.Set("Cache-Status", "api; fwd=miss; detail=corrupt")
			slog.ErrorContext(r.Context(), "summary hash is corrupt", "type", typ, "err", err)
			problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal", "Internal error",
				"the summary could not be read"))
		case r.Context().Err() != nil:
			// The client went away (or a server timeout fired) while waiting.
			hdr.Set("Cache-Status", "api; fwd=miss")
			problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "service-unavailable",
				"Service unavailable", "the request was cancelled before the summary was read"))
		default:
			hdr.Set("Cache-Status", "api; fwd=miss; detail=store-unavailable")
			hdr.Set("Retry-After", RetryAfter)
			slog.WarnContext(r.Context(), "summary read failed and nothing is cached", "type", typ, "err", err)
			problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "service-unavailable",
				"Service unavailable", "the summary store is unavailable; retry shortly"))
		}
		return
	}

	res.Serve(hdr, h.m)
	if res.Status == cache.Stale {
		slog.WarnContext(r.Context(), "serving stale summary", "type", typ, "expired_ago", -res.TTL, "err", res.Err)
	}
	hdr.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Value)
}
