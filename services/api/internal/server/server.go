// Package server wires the api's HTTP surface: the chi router, the
// middleware chain and every route. It holds no logic of its own; main
// builds the components and hands them over in Deps.
package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/keys"
	"github.com/resilientanalytics/ra/pkg/problem"
	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/dashboard"
	"github.com/resilientanalytics/ra/services/api/internal/dashboard/live"
	"github.com/resilientanalytics/ra/services/api/internal/external"
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
	Redis  redis.UniversalClient
	Log    *slog.Logger
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
	store    *ingest.Store
	external *external.Client
	live     *live.Hub
}

// Run runs the background work of the components (the breaker state
// watcher) until ctx ends. Then it ends the live streams, which never end
// on their own, so the HTTP server's graceful drain does not wait for them.
func (a *API) Run(ctx context.Context) error {
	defer a.live.Close()
	return a.external.Run(ctx)
}

// Close releases what the handler owns (the live streams, the ingest
// pipeline). Call it after the HTTP server has drained, so in-flight
// requests still get answers.
func (a *API) Close() {
	a.live.Close()
	a.store.Close()
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
	k := keys.New(d.Config.StreamKey)
	policy := Policy(d.Config.RateLimit)
	// Time-windowed reads (per-minute buckets) and the list of types; the
	// summary route hands requests with a range to the windowed handler.
	windows, err := series.New(d.Redis, k, series.Options{Partitions: d.Config.Partitions,
		Retention: d.Config.BucketRetention, Cache: d.Config.Cache, Metrics: m})
	if err != nil {
		return nil, err
	}
	summaries, err := summary.NewHandler(d.Redis, k, d.Config.Cache, m,
		summary.Options{Partitions: d.Config.Partitions, Windowed: http.HandlerFunc(windows.ServeSummary)})
	if err != nil {
		return nil, err
	}
	types, err := typelist.New(d.Redis, k, typelist.Options{Partitions: d.Config.Partitions, Cache: d.Config.Cache, Metrics: m})
	if err != nil {
		return nil, err
	}
	ext, err := external.New(d.Config.External, d.Config.Circuit, m, external.Options{Logger: d.Log})
	if err != nil {
		return nil, err
	}
	page, err := dashboard.New()
	if err != nil {
		return nil, err
	}
	hub, err := live.New(live.Funcs{SeriesFunc: windows.Fresh, SummaryFunc: summaries.Fresh},
		live.Options{MaxStreams: d.Config.SSEMaxStreams, Retention: d.Config.BucketRetention, Timeout: d.Config.Cache.ReadTimeout, Logger: d.Log})
	if err != nil {
		return nil, err
	}
	ping := health.PingFunc(func(ctx context.Context) error { return d.Redis.Ping(ctx).Err() })
	sys, err := system.New(system.NewRedis(d.Redis, k, d.Config.Partitions, d.Config.ConsumerGroup), ping, ext.State,
		system.Options{Group: d.Config.ConsumerGroup})
	if err != nil {
		return nil, err
	}
	// Last: the store starts goroutines, so nothing may fail after it.
	store := ingest.NewStore(d.Redis, k, d.Config.Partitions, policy)
	ingestHandler := ingest.NewHandler(store, policy,
		ingest.Limits{MaxBodyBytes: d.Config.Ingest.MaxBodyBytes, MaxBatch: d.Config.Ingest.MaxBatch}, m, d.Log)

	r := chi.NewRouter()
	access := d.AccessLog
	if access == nil {
		access = io.Discard
	}
	r.Use(middleware.RequestID, m.Middleware, middleware.AccessLog(d.Log, access), middleware.Recover(d.Log))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "Not Found", "no such endpoint: "+r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(http.StatusMethodNotAllowed, "method-not-allowed", "Method Not Allowed",
			r.Method+" is not allowed on "+r.URL.Path))
	})

	r.Get("/livez", health.Live)
	r.Method(http.MethodGet, "/metrics", m.Handler())
	r.Get("/health", health.Handler(health.PingFunc(func(ctx context.Context) error { return d.Redis.Ping(ctx).Err() })))
	r.With(ratelimit.ClientKey(trusted)).Post("/api/metrics", ingestHandler.ServeHTTP)
	r.Method(http.MethodGet, "/api/metrics/summary", summaries)
	r.Method(http.MethodGet, "/api/metrics/series", windows)
	r.Method(http.MethodGet, "/api/metrics/types", types)
	r.Method(http.MethodGet, "/api/external-data", ext.DataHandler())
	r.Method(http.MethodGet, "/api/external-data/circuit", ext.CircuitHandler())
	r.Method(http.MethodGet, "/api/metrics/series/stream", hub)
	r.Method(http.MethodGet, "/api/system", sys)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		r.MethodFunc(method, "/", page.ServePage)
		r.MethodFunc(method, "/assets/*", page.ServeAsset)
	}
	return &API{Handler: r, store: store, external: ext, live: hub}, nil
}
