// Package server wires the api's HTTP surface: the chi router, the
// middleware chain and every route. It holds no logic of its own; main
// builds the components and hands them over in Deps.
package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/cache"
	"github.com/resilientanalytics/ra/services/api/internal/dashboard"
	"github.com/resilientanalytics/ra/services/api/internal/dashboard/live"
	"github.com/resilientanalytics/ra/services/api/internal/external"
	"github.com/resilientanalytics/ra/services/api/internal/fail"
	"github.com/resilientanalytics/ra/services/api/internal/health"
	"github.com/resilientanalytics/ra/services/api/internal/ingest"
	"github.com/resilientanalytics/ra/services/api/internal/middleware"
	"github.com/resilientanalytics/ra/services/api/internal/ratelimit"
	"github.com/resilientanalytics/ra/services/api/internal/series"
	"github.com/resilientanalytics/ra/services/api/internal/summary"
	"github.com/resilientanalytics/ra/services/api/internal/system"
	"github.com/resilientanalytics/ra/services/api/internal/telemetry"
	"github.com/resilientanalytics/ra/services/api/internal/typelist"
)

// Deps are the components the routes need.
type Deps struct {
	Config config.Config
	// Store is the Redis data model (its key family and partitions are
	// STREAM_KEY and STREAM_PARTITIONS).
	Store *store.Store
	Log   *slog.Logger
	// AccessLog receives one JSON line per request (nil: none are written).
	AccessLog io.Writer
	// Metrics is the api's Prometheus registry and recorder.
	Metrics *telemetry.Metrics
}

// Policy is the rate-limit policy the configuration describes (disabled
// when RATE_LIMIT_ENABLED=false).
func Policy(c config.RateLimit) ratelimit.Policy {
	if !c.Enabled {
		return ratelimit.Policy{}
	}
	return ratelimit.Policy{Max: c.Max, Window: c.Window}
}

// API is the api's HTTP handler and the components it owns.
type API struct {
	http.Handler
	closers  []func()
	external *external.Client
	live     *live.Hub
	health   *health.Checker
}

// Run runs the background work of the components (the breaker state
// watcher) until ctx ends. Then it ends the live streams, which never end
// on their own, so the HTTP server's graceful drain does not wait for them.
// It first reads the Redis durability, so a weak one is warned about at
// start.
func (a *API) Run(ctx context.Context) error {
	defer a.live.Close()
	a.health.Start(ctx)
	return a.external.Run(ctx)
}

// Close releases what the handler owns (the live streams, the ingest
// coalescer). Call it after the HTTP server has drained, so in-flight
// requests still get answers.
func (a *API) Close() {
	for _, c := range a.closers {
		c()
	}
}

// New returns the api's handler.
func New(d Deps) (*API, error) {
	trusted, err := d.Config.RateLimit.Prefixes()
	if err != nil {
		return nil, err
	}
	m := d.Metrics
	if m == nil {
		m = telemetry.New()
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := d.Store
	apiKeys, err := d.Config.Auth.Load()
	if err != nil {
		return nil, err
	}
	if apiKeys.Len() == 0 {
		log.Warn("no API keys configured (API_KEYS, API_KEYS_FILE): ingest is open to anyone who can reach the port")
	}
	m.DeclareKeys(apiKeys.Names())
	policy := Policy(d.Config.RateLimit)
	// Time-windowed reads (per-minute buckets) and the list of types; the
	// summary route hands requests with a range to the windowed handler.
	// One byte budget (CACHE_MAX_BYTES) for every cache of the api.
	budget, err := cache.NewBudget(int64(d.Config.Cache.MaxBytes))
	if err != nil {
		return nil, err
	}
	m.SetCacheBudget(budget)
	windows, err := series.New(st, series.Options{
		Retention: d.Config.BucketRetention, Cache: d.Config.Cache, Metrics: m, Logger: log, Budget: budget})
	if err != nil {
		return nil, err
	}
	summaries, err := summary.NewHandler(st, d.Config.Cache, m,
		summary.Options{Windowed: http.HandlerFunc(windows.ServeSummary), Logger: log, Budget: budget})
	if err != nil {
		return nil, err
	}
	types, err := typelist.New(st, typelist.Options{Cache: d.Config.Cache, Metrics: m, Logger: log, Budget: budget})
	if err != nil {
		return nil, err
	}
	ext, err := external.New(d.Config.External, d.Config.Circuit, m, external.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	page, err := dashboard.New()
	if err != nil {
		return nil, err
	}
	checker, err := health.New(st, health.Options{Durability: st, Registerer: m.Registry(), Logger: log})
	if err != nil {
		return nil, err
	}
	sys, err := system.New(system.NewStoreGroups(st, d.Config.ConsumerGroup), st, ext.State,
		system.Options{Group: d.Config.ConsumerGroup, Durability: checker.Durability, Logger: log})
	if err != nil {
		return nil, err
	}
	hub, err := live.New(live.Funcs{SeriesFunc: windows.Fresh, SummaryFunc: summaries.Fresh},
		live.Options{MaxStreams: d.Config.SSEMaxStreams, Retention: d.Config.BucketRetention, Timeout: d.Config.Cache.ReadTimeout, Logger: log})
	if err != nil {
		return nil, err
	}
	api := &API{external: ext, live: hub, health: checker}
	api.closers = append(api.closers, hub.Close)
	// Last: the coalescer starts a goroutine, so it is closed if anything
	// fails after it.
	var app ingest.Appender = st
	if d.Config.Ingest.Coalesce {
		c := ingest.NewCoalescer(st, ingest.CoalescerOptions{})
		api.closers = append(api.closers, c.Close)
		app = c
	}
	ingestHandler, err := ingest.NewHandler(app, policy, ingest.Limits{MaxBodyBytes: d.Config.Ingest.MaxBodyBytes,
		MaxBatch: d.Config.Ingest.MaxBatch, MaxAbsValue: d.Config.Ingest.MaxAbsValue, MaxFuture: d.Config.Ingest.MaxFuture,
		IdempotencyTTL: d.Config.Ingest.IdempotencyTTL}, m, log)
	if err != nil {
		api.Close()
		return nil, err
	}

	r := chi.NewRouter()
	access := d.AccessLog
	if access == nil {
		access = io.Discard
	}
	// GetHead serves HEAD on every GET route (net/http drops the body).
	r.Use(middleware.RequestID, m.Middleware, middleware.AccessLog(log, access), middleware.Recover(log),
		middleware.CloseChunked, chimw.GetHead)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		fail.Write(w, r, log, fail.Errorf(fail.NotFound, "no such endpoint: %s", r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		allow := allowed(r, req.URL.Path)
		w.Header().Set("Allow", allow)
		fail.Write(w, req, log, fail.Errorf(fail.MethodNotAllowed, "%s is not allowed on %s; allowed: %s", req.Method, req.URL.Path, allow))
	})

	r.Get("/livez", health.Live)
	r.Method(http.MethodGet, "/metrics", m.Handler())
	r.Get("/health", checker.ServeHTTP)
	r.With(apiKeys.Middleware, ratelimit.ClientKey(trusted)).Post("/api/metrics", ingestHandler.ServeHTTP)
	// Every GET /api/... route goes through reads: with AUTH_READS=true
	// it needs a key too; /health, /livez, /metrics and / stay open.
	reads := chi.Router(r)
	if d.Config.Auth.Reads {
		reads = r.With(apiKeys.Middleware)
	}
	reads.Method(http.MethodGet, "/api/metrics/summary", summaries)
	reads.Method(http.MethodGet, "/api/metrics/series", windows)
	reads.Method(http.MethodGet, "/api/metrics/types", types)
	reads.Method(http.MethodGet, "/api/external-data", ext.DataHandler())
	reads.Method(http.MethodGet, "/api/external-data/circuit", ext.CircuitHandler())
	reads.Method(http.MethodGet, "/api/metrics/series/stream", hub)
	reads.Method(http.MethodGet, "/api/system", sys)
	// The dashboard page itself stays open: it asks for a key when its
	// data calls answer 401.
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		r.MethodFunc(method, "/", page.ServePage)
		r.MethodFunc(method, "/assets/*", page.ServeAsset)
	}
	api.Handler = r
	return api, nil
}

// allowed lists the methods routes serves on path, for a 405's Allow
// header (RFC 9110 section 15.5.6). chi keeps its own list from a custom
// 405 handler, so the routes are asked again; HEAD comes with every GET
// (GetHead).
func allowed(routes chi.Routes, path string) string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		if routes.Match(chi.NewRouteContext(), m, path) ||
			m == http.MethodHead && routes.Match(chi.NewRouteContext(), http.MethodGet, path) {
			out = append(out, m)
		}
	}
	return strings.Join(out, ", ")
}
