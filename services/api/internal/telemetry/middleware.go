package telemetry

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/resilientanalytics/ra/services/api/internal/middleware"
)

// RouteOther is the route label of requests no route matched.
const RouteOther = "other"

// Middleware counts every request and observes its latency by route pattern
// and status code. Install it with chi's Use on the router (so the route
// context exists); the pattern is read after the handler ran, when chi has
// matched it. Requests no route matched are labelled RouteOther. Put a
// panic recoverer after (inside) it so a recovered panic is counted as the
// 500 it becomes.
//
// It is built for the ingest hot path: the status-capturing writer is
// pooled and the (route, code) series are resolved once and then found
// with a read lock and an array index, so a request allocates nothing here
// (chi's RoutePattern allocates only for patterns built from sub-routers).
// The writer must not be used after the handler returns, as net/http
// already requires.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := middleware.NewRecorder(w)
		next.ServeHTTP(rw, r)
		status := rw.Status()
		rw.Release()

		route := ""
		if rc := chi.RouteContext(r.Context()); rc != nil {
			route = rc.RoutePattern()
		}
		if route == "" {
			route = RouteOther
		}
		s := m.routes.series(route, status)
		s.count.Inc()
		s.latency.Observe(time.Since(start).Seconds())
	})
}

// series is the pre-resolved pair of collectors for one (route, code).
type series struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// routeSeries holds the series of one route, indexed by status code.
type routeSeries struct {
	codes [600]atomic.Pointer[series]
}

// routeTable resolves (route, code) to its series, creating it on first use.
type routeTable struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu     sync.RWMutex
	routes map[string]*routeSeries
}

func (t *routeTable) init(requests *prometheus.CounterVec, duration *prometheus.HistogramVec) {
	t.requests, t.duration = requests, duration
	t.routes = make(map[string]*routeSeries)
}

func (t *routeTable) series(route string, code int) *series {
	if code < 100 || code >= len(routeSeries{}.codes) {
		// net/http allows codes up to 999; rare, so resolve them each time.
		c := strconv.Itoa(code)
		return &series{count: t.requests.WithLabelValues(route, c), latency: t.duration.WithLabelValues(route, c)}
	}
	t.mu.RLock()
	rs := t.routes[route]
	t.mu.RUnlock()
	if rs == nil {
		t.mu.Lock()
		if rs = t.routes[route]; rs == nil {
			rs = new(routeSeries)
			t.routes[route] = rs
		}
		t.mu.Unlock()
	}
	if s := rs.codes[code].Load(); s != nil {
		return s
	}
	c := strconv.Itoa(code)
	s := &series{count: t.requests.WithLabelValues(route, c), latency: t.duration.WithLabelValues(route, c)}
	if !rs.codes[code].CompareAndSwap(nil, s) {
		s = rs.codes[code].Load()
	}
	return s
}
