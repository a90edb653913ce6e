// Package telemetry is the api's Prometheus instrumentation: one registry
// owned by the process (never the global default registry, so tests and
// several servers in one process do not collide), an HTTP middleware that
// counts requests and observes their latency by route pattern and status
// code, and the counters the components report to (rate-limit rejections,
// cache hits/misses/stale, circuit-breaker state and transitions, ingest
// write errors and stored metrics). Handler serves GET /metrics in the
// Prometheus text format.
//
// The ingest counters carry a key label: the API key name, "" for requests
// without one. Names come from the configuration only (an unknown key is a
// 401 before anything is counted), so the label stays bounded; keys and
// hashes are never labels.
//
// Every method is safe for concurrent use and safe on a nil *Metrics (it
// then does nothing), so components can be built without telemetry in tests.
//
// Series (all prefixed ra_api_):
//
//	http_requests_total{route,code}             counter
//	http_request_duration_seconds{route,code}   histogram
//	rate_limited_total{key}                     counter
//	cache_requests_total{result=hit|miss|stale} counter
//	cache_bytes                                 gauge, bytes the caches hold (their own accounting)
//	cache_max_bytes                             gauge, CACHE_MAX_BYTES
//	circuit_breaker_state{state}                gauge, 1 for the current state
//	circuit_breaker_transitions_total{from,to}  counter
//	ingest_write_errors_total{key}              counter
//	ingest_metrics_total{key}                   counter
//
// plus the standard go_* and process_* collectors.
package telemetry

import (
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "ra_api"

// Breaker state label values, as DESIGN.md spells circuit_state.
const (
	StateClosed   = "CLOSED"
	StateOpen     = "OPEN"
	StateHalfOpen = "HALF_OPEN"
)

var breakerStates = [...]string{StateClosed, StateOpen, StateHalfOpen}

// Metrics holds the api's collectors and their registry.
type Metrics struct {
	reg *prometheus.Registry

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	rateLimited      *prometheus.CounterVec
	cacheHit         prometheus.Counter
	cacheMiss        prometheus.Counter
	cacheStale       prometheus.Counter
	breakerState     *prometheus.GaugeVec
	breakerTransit   *prometheus.CounterVec
	ingestWriteError *prometheus.CounterVec
	ingested         *prometheus.CounterVec
	cacheBudget      atomic.Pointer[CacheBudget]

	// anonymous and keys are the ingest series resolved once: for requests
	// without a key and per declared key name (DeclareKeys).
	anonymous *keySeries
	keys      atomic.Pointer[map[string]*keySeries]
}

// keySeries is the ingest counters of one key label value.
type keySeries struct {
	rateLimited, writeErrors, metrics prometheus.Counter
}

// CacheBudget is the byte budget of the api's caches (cache.Budget).
type CacheBudget interface {
	Bytes() int64
	Max() int64
}

// New registers every collector in a new registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests served, by chi route pattern (\"other\" when unmatched) and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "HTTP request latency, by chi route pattern and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "code"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "rate_limited_total",
			Help: "Ingest requests rejected with 429 by the rate limiter, by API key name (\"\" without a key).",
		}, []string{"key"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "circuit_breaker_state",
			Help: "Circuit breaker around the external service: 1 for the current state, 0 for the others.",
		}, []string{"state"}),
		breakerTransit: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "circuit_breaker_transitions_total",
			Help: "Circuit breaker state changes, by from and to state.",
		}, []string{"from", "to"}),
		ingestWriteError: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ingest_write_errors_total",
			Help: "Ingest requests that failed because Redis did not acknowledge the write (answered 503), by API key name.",
		}, []string{"key"}),
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ingest_metrics_total",
			Help: "Metrics stored (answered 201), by API key name (\"\" without a key).",
		}, []string{"key"}),
	}
	m.anonymous = m.newKeySeries("")
	m.keys.Store(&map[string]*keySeries{})
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "cache_requests_total",
		Help: "Summary cache lookups: hit (fresh), miss (read from Redis), stale (served past its TTL because Redis failed).",
	}, []string{"result"})
	m.cacheHit = cache.WithLabelValues("hit")
	m.cacheMiss = cache.WithLabelValues("miss")
	m.cacheStale = cache.WithLabelValues("stale")
	cacheGauge := func(name, help string, read func(CacheBudget) int64) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, func() float64 {
			if b := m.cacheBudget.Load(); b != nil {
				return float64(read(*b))
			}
			return 0
		})
	}

	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration, m.rateLimited, cache,
		m.breakerState, m.breakerTransit, m.ingestWriteError, m.ingested,
		cacheGauge("cache_bytes", "Bytes held by the summary, series and types caches together, as their byte budget accounts them.",
			CacheBudget.Bytes),
		cacheGauge("cache_max_bytes", "The caches' byte budget (CACHE_MAX_BYTES).", CacheBudget.Max),
	)
	// The breaker starts closed; export that before the first transition.
	m.SetBreakerState(StateClosed)
	return m
}

// Registry is the registry every series lives in (for tests and for
// registering further collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves GET /metrics from m's registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *Metrics) newKeySeries(key string) *keySeries {
	return &keySeries{
		rateLimited: m.rateLimited.WithLabelValues(key),
		writeErrors: m.ingestWriteError.WithLabelValues(key),
		metrics:     m.ingested.WithLabelValues(key),
	}
}

// DeclareKeys exports the ingest series of every API key name at 0 (so a
// key that has sent nothing yet shows up) and resolves them once for the
// hot path. Call it with the configured names before serving.
func (m *Metrics) DeclareKeys(names []string) {
	if m == nil {
		return
	}
	next := map[string]*keySeries{}
	for k, v := range *m.keys.Load() {
		next[k] = v
	}
	for _, n := range names {
		if n != "" && next[n] == nil {
			next[n] = m.newKeySeries(n)
		}
	}
	m.keys.Store(&next)
}

func (m *Metrics) keySeries(key string) *keySeries {
	if key == "" {
		return m.anonymous
	}
	if s := (*m.keys.Load())[key]; s != nil {
		return s
	}
	return m.newKeySeries(key)
}

// RateLimited counts one request of key ("" without one) rejected with 429.
func (m *Metrics) RateLimited(key string) {
	if m != nil {
		m.keySeries(key).rateLimited.Inc()
	}
}

// IngestWriteError counts one ingest request of key that Redis did not
// acknowledge.
func (m *Metrics) IngestWriteError(key string) {
	if m != nil {
		m.keySeries(key).writeErrors.Inc()
	}
}

// Ingested counts n metrics of key stored with a 201.
func (m *Metrics) Ingested(key string, n int) {
	if m != nil {
		m.keySeries(key).metrics.Add(float64(n))
	}
}

// CacheHit counts a lookup answered from a fresh cache entry.
func (m *Metrics) CacheHit() {
	if m != nil {
		m.cacheHit.Inc()
	}
}

// CacheMiss counts a lookup that had to read Redis (including callers that
// joined another caller's read).
func (m *Metrics) CacheMiss() {
	if m != nil {
		m.cacheMiss.Inc()
	}
}

// CacheStale counts a lookup answered from an expired entry because the
// read from Redis failed (stale-if-error).
func (m *Metrics) CacheStale() {
	if m != nil {
		m.cacheStale.Inc()
	}
}

// SetCacheBudget makes cache_bytes and cache_max_bytes report b (read at
// each scrape).
func (m *Metrics) SetCacheBudget(b CacheBudget) {
	if m != nil && b != nil {
		m.cacheBudget.Store(&b)
	}
}

// SetBreakerState sets the state gauge: 1 for state, 0 for the others.
// state is StateClosed, StateOpen or StateHalfOpen.
func (m *Metrics) SetBreakerState(state string) {
	if m == nil {
		return
	}
	for _, s := range breakerStates {
		v := 0.0
		if s == state {
			v = 1
		}
		m.breakerState.WithLabelValues(s).Set(v)
	}
}

// BreakerTransition counts one state change and updates the state gauge.
func (m *Metrics) BreakerTransition(from, to string) {
	if m == nil {
		return
	}
	m.breakerTransit.WithLabelValues(from, to).Inc()
	m.SetBreakerState(to)
}
