package telemetry

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/resilientanalytics/ra/services/api/internal/middleware"
)

// RouteOther is the route label of requests no route matched.
const RouteOther = "other"

// Middleware counts every request and observes its latency by route pattern
// and status code. Install it with chi's Use on the router (so the route
// context exists); the pattern is read after the handler ran, when chi has
// matched it. Requests no route matched are labelled RouteOther. Put a
// panic recoverer after (inside) it so a recovered panic is counted as the
// 500 it becomes. The status comes from middleware's Recorder rather than
// promhttp's delegator, which would count a 1xx informational header as the
// final status.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := middleware.NewRecorder(w)
		next.ServeHTTP(rw, r)
		code := strconv.Itoa(rw.Status())
		rw.Release()

		route := ""
		if rc := chi.RouteContext(r.Context()); rc != nil {
			route = rc.RoutePattern()
		}
		if route == "" {
			route = RouteOther
		}
		m.requests.WithLabelValues(route, code).Inc()
		m.duration.WithLabelValues(route, code).Observe(time.Since(start).Seconds())
	})
}
