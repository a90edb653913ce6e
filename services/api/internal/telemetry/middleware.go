package telemetry

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
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
		sw := writerPool.Get().(*statusWriter)
		sw.ResponseWriter, sw.status, sw.wrote = w, 0, false
		next.ServeHTTP(sw, r)
		status := sw.status
		if !sw.wrote {
			status = http.StatusOK
		}
		sw.ResponseWriter = nil
		writerPool.Put(sw)

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

var writerPool = sync.Pool{New: func() any { return new(statusWriter) }}

// statusWriter records the status code a handler sends. Unwrap lets
// http.ResponseController reach the underlying writer (Flush, deadlines,
// Hijack).
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote && (code >= 200 || code == http.StatusSwitchingProtocols) {
		// 1xx informational headers are not the final status.
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher for handlers that type-assert it.
func (w *statusWriter) Flush() {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap returns the wrapped writer for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
