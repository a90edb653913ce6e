// Package series serves the time-windowed reads built on the aggregator's
// per-minute buckets (pkg/store):
//
//	GET /api/metrics/series?type=X&from=T1&to=T2&step=5m   (or &window=1h)
//	GET /api/metrics/summary?type=X&from=T1&to=T2          (or &window=15m)
//
// The summary route's handler (package summary) hands requests with a range
// to Handler.ServeSummary; without one it stays the all-time summary.
// Queries are parsed and normalised by package window; every 400 names the
// query parameter at fault.
//
// Reads: one pipeline per cache miss reads every hour hash of the range in
// every partition plus the type's entry in each partition's types set, and
// merges them (store.Buckets). A type that was never aggregated is a
// 404 (not cached); a known type with nothing in the range is a 200 with
// count 0.
//
// Caching: the encoded bodies go through the api's TTL cache with
// singleflight (package cache), keyed by the normalised query, so every
// request for the same minutes shares one entry and N concurrent misses cost
// one read. Two caches: ranges that ended more than CACHE_TTL ago are
// "past" and kept CACHE_PAST_TTL (default 10m) — they change only when a
// metric arrives with an old event time — while ranges reaching closer to
// now are kept CACHE_TTL (60s), like the all-time summary. Headers are the
// summary's: X-Cache, Cache-Status (RFC 9211) and Cache-Control: max-age.
package series

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

// Store reads a type's per-minute buckets, merged over every partition;
// *store.Store implements it.
type Store interface {
	Buckets(ctx context.Context, typ string, from, to int64) (store.Range, error)
}

var _ Store = (*store.Store)(nil)

// Summary is the 200 body of a windowed summary. Average, min and max are
// null when the range holds no metric (count 0).
type Summary struct {
	Type         string   `json:"type"`
	From         string   `json:"from"`
	To           string   `json:"to"`
	Count        int64    `json:"count"`
	AverageValue *float64 `json:"average_value"`
	MinValue     *float64 `json:"min_value"`
	MaxValue     *float64 `json:"max_value"`
	Sum          float64  `json:"sum"`
}

// Series is the 200 body of a series.
type Series struct {
	Type   string  `json:"type"`
	From   string  `json:"from"`
	To     string  `json:"to"`
	Step   string  `json:"step"`
	Points []Point `json:"points"`
}

// Point is one step of a series, starting at T. An empty step is count 0
// with null average, min and max: present (a chart draws no false gap) but
// not a false zero.
type Point struct {
	T            string   `json:"t"`
	Count        int64    `json:"count"`
	AverageValue *float64 `json:"average_value"`
	MinValue     *float64 `json:"min_value"`
	MaxValue     *float64 `json:"max_value"`
}

// Options configure a Handler.
type Options struct {
	// Retention is BUCKET_RETENTION.
	Retention time.Duration
	// Cache is CACHE_* (TTL, PastTTL, StaleMax, MaxEntries, ReadTimeout).
	Cache config.Cache
	// Metrics may be nil.
	Metrics *telemetry.Metrics
	// Logger receives failures and stale answers (default: discarded).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Budget is the byte budget (CACHE_MAX_BYTES) both caches share with
	// the api's other caches (default: each cache one of its own).
	Budget *cache.Budget
}

// Handler serves series and windowed summaries.
type Handler struct {
	store  Store
	opts   Options
	recent *cache.Cache[[]byte]
	past   *cache.Cache[[]byte]
}

// New returns a Handler reading st.
func New(st Store, opts Options) (*Handler, error) {
	if st == nil {
		return nil, errors.New("series: nil store")
	}
	if opts.Retention <= 0 {
		return nil, fmt.Errorf("series: Options.Retention must be > 0, got %s", opts.Retention)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{store: st, opts: opts}
	var err error
	mk := func(ttl time.Duration) (*cache.Cache[[]byte], error) {
		return cache.New(h.load, cache.Options{TTL: ttl, StaleMax: opts.Cache.StaleMax, MaxEntries: opts.Cache.MaxEntries,
			LoadTimeout: opts.Cache.ReadTimeout, Now: opts.Now, Budget: opts.Budget})
	}
	if h.recent, err = mk(opts.Cache.TTL); err != nil {
		return nil, fmt.Errorf("series cache: %w", err)
	}
	if h.past, err = mk(max(opts.Cache.PastTTL, opts.Cache.TTL)); err != nil {
		return nil, fmt.Errorf("series cache: %w", err)
	}
	return h, nil
}

func (h *Handler) limits() window.Limits { return window.Limits{Retention: h.opts.Retention} }

// ServeHTTP answers GET /api/metrics/series.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q, errs := window.ParseSeries(r.URL.Query(), h.opts.Now(), h.limits())
	h.serve(w, r, q, errs)
}

// ServeSummary answers GET /api/metrics/summary with from/to or window.
func (h *Handler) ServeSummary(w http.ResponseWriter, r *http.Request) {
	q, errs := window.ParseSummary(r.URL.Query(), h.opts.Now(), h.limits())
	h.serve(w, r, q, errs)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, q window.Query, errs []metric.FieldError) {
	if len(errs) > 0 {
		fail.Write(w, r, h.opts.Logger, &fail.Error{Code: fail.Invalid,
			Detail: "query parameter " + errs[0].Field + " " + errs[0].Message, Fields: errs})
		return
	}
	c := h.recent
	if !q.To.After(h.opts.Now().Add(-h.opts.Cache.TTL)) {
		c = h.past
	}
	res, err := c.Get(r.Context(), q.Key())
	hdr := w.Header()
	if err != nil {
		cache.ServeError(hdr, h.opts.Metrics, r, err)
		if errors.Is(err, cache.ErrNotFound) {
			err = &fail.Error{Code: fail.NotFound, Title: "Metric type not found",
				Detail: "no metric of type " + strconv.Quote(q.Type) + " has been aggregated yet"}
		}
		fail.Write(w, r, h.opts.Logger, err)
		return
	}
	res.Serve(hdr, h.opts.Metrics)
	if res.Status == cache.Stale {
		h.opts.Logger.WarnContext(r.Context(), "serving stale buckets", "request_id", hdr.Get("X-Request-Id"), "type", q.Type, "expired_ago", -res.TTL, "err", res.Err)
	}
	hdr.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Value)
}

// Fresh reads and encodes q's answer from Redis, bypassing the cache, for
// the dashboard's live stream (which must show a metric within seconds,
// not CACHE_TTL); cache.ErrNotFound when the type was never aggregated.
func (h *Handler) Fresh(ctx context.Context, q window.Query) ([]byte, error) {
	return h.load(ctx, q.Key())
}

// load reads and encodes the answer to one normalised query (its cache
// key); cache.ErrNotFound when the type was never aggregated.
func (h *Handler) load(ctx context.Context, key string) ([]byte, error) {
	q, err := window.FromKey(key)
	if err != nil {
		return nil, err
	}
	rg, err := h.store.Buckets(ctx, q.Type, q.From.UnixMicro(), q.To.UnixMicro())
	if err != nil {
		return nil, err
	}
	if !rg.Known {
		return nil, cache.ErrNotFound
	}
	from, to := format(q.From), format(q.To)
	if q.Kind == window.Summary {
		c := store.Total(rg.Minutes)
		avg, lo, hi := stats(c)
		return json.Marshal(Summary{Type: q.Type, From: from, To: to, Count: c.Count,
			AverageValue: avg, MinValue: lo, MaxValue: hi, Sum: c.Sum})
	}
	cells := store.Fold(rg.Minutes, int(q.Step/time.Minute))
	points := make([]Point, len(cells))
	for i, c := range cells {
		avg, lo, hi := stats(c)
		points[i] = Point{T: format(q.From.Add(time.Duration(i) * q.Step)), Count: c.Count,
			AverageValue: avg, MinValue: lo, MaxValue: hi}
	}
	return json.Marshal(Series{Type: q.Type, From: from, To: to, Step: window.FormatStep(q.Step), Points: points})
}

func stats(c store.Cell) (avg, lo, hi *float64) {
	if c.Count == 0 {
		return nil, nil, nil
	}
	a, l, m := c.Average(), c.Min, c.Max
	return &a, &l, &m
}

func format(t time.Time) string { return t.UTC().Format(time.RFC3339) }
