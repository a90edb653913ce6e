package telemetry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

func newRouter(m *Metrics) http.Handler {
	r := chi.NewRouter()
	if m != nil {
		r.Use(m.Middleware)
	}
	r.Post("/api/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})
	r.Get("/api/metrics/summary", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "{}") // implicit 200
	})
	r.Get("/api/items/{id}", func(w http.ResponseWriter, _ *http.Request) {}) // writes nothing: 200
	r.Get("/flush", func(w http.ResponseWriter, _ *http.Request) {
		if err := http.NewResponseController(w).Flush(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	return r
}

// scrape returns the /metrics text of m.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	return rec.Body.String()
}

func TestMiddlewareLabelsRouteAndStatus(t *testing.T) {
	m := New()
	h := newRouter(m)
	requests := []struct {
		method, path string
		wantCode     int
	}{
		{http.MethodPost, "/api/metrics", http.StatusCreated},
		{http.MethodPost, "/api/metrics", http.StatusCreated},
		{http.MethodGet, "/api/metrics/summary?type=cpu", http.StatusOK},
		{http.MethodGet, "/api/items/42", http.StatusOK},
		{http.MethodGet, "/api/items/43", http.StatusOK},
		{http.MethodGet, "/no/such/route", http.StatusNotFound},
		{http.MethodGet, "/flush", http.StatusOK},
	}
	for _, rq := range requests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(rq.method, rq.path, nil))
		if rec.Code != rq.wantCode {
			t.Fatalf("%s %s = %d, want %d", rq.method, rq.path, rec.Code, rq.wantCode)
		}
	}

	text := scrape(t, m)
	for _, want := range []string{
		`ra_api_http_requests_total{code="201",route="/api/metrics"} 2`,
		`ra_api_http_requests_total{code="200",route="/api/metrics/summary"} 1`,
		`ra_api_http_requests_total{code="200",route="/api/items/{id}"} 2`,
		`ra_api_http_requests_total{code="404",route="other"} 1`,
		`ra_api_http_requests_total{code="200",route="/flush"} 1`,
		`ra_api_http_request_duration_seconds_count{code="201",route="/api/metrics"} 2`,
		`ra_api_http_request_duration_seconds_bucket{code="201",route="/api/metrics",le="+Inf"} 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestComponentSeries(t *testing.T) {
	m := New()
	m.DeclareKeys([]string{"ci", "idle"})
	m.RateLimited("")
	m.RateLimited("")
	m.RateLimited("ci")
	m.IngestWriteError("")
	m.Ingested("ci", 3)
	m.Ingested("ci", 2)
	m.Ingested("", 1)
	m.Ingested("undeclared", 4)
	m.CacheHit()
	m.CacheHit()
	m.CacheHit()
	m.CacheMiss()
	m.CacheStale()
	m.BreakerTransition(StateClosed, StateOpen)
	m.BreakerTransition(StateOpen, StateHalfOpen)

	text := scrape(t, m)
	for _, want := range []string{
		`ra_api_rate_limited_total{key=""} 2`,
		`ra_api_rate_limited_total{key="ci"} 1`,
		`ra_api_rate_limited_total{key="idle"} 0`,
		`ra_api_ingest_write_errors_total{key=""} 1`,
		`ra_api_ingest_write_errors_total{key="ci"} 0`,
		`ra_api_ingest_metrics_total{key="ci"} 5`,
		`ra_api_ingest_metrics_total{key=""} 1`,
		`ra_api_ingest_metrics_total{key="idle"} 0`,
		`ra_api_ingest_metrics_total{key="undeclared"} 4`,
		`ra_api_cache_requests_total{result="hit"} 3`,
		`ra_api_cache_requests_total{result="miss"} 1`,
		`ra_api_cache_requests_total{result="stale"} 1`,
		`ra_api_circuit_breaker_transitions_total{from="CLOSED",to="OPEN"} 1`,
		`ra_api_circuit_breaker_transitions_total{from="OPEN",to="HALF_OPEN"} 1`,
		`ra_api_circuit_breaker_state{state="HALF_OPEN"} 1`,
		`ra_api_circuit_breaker_state{state="OPEN"} 0`,
		`ra_api_circuit_breaker_state{state="CLOSED"} 0`,
		"go_goroutines ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestFreshRegistryStartsClosed(t *testing.T) {
	text := scrape(t, New())
	if !strings.Contains(text, `ra_api_circuit_breaker_state{state="CLOSED"} 1`) {
		t.Fatalf("a new registry does not report the breaker closed:\n%s", text)
	}
	// Two registries in one process do not collide (no global registry).
	_ = New()
}

func TestNilMetricsIsANoop(t *testing.T) {
	var m *Metrics
	m.DeclareKeys([]string{"ci"})
	m.RateLimited("ci")
	m.IngestWriteError("")
	m.Ingested("ci", 1)
	m.CacheHit()
	m.CacheMiss()
	m.CacheStale()
	m.SetBreakerState(StateOpen)
	m.BreakerTransition(StateClosed, StateOpen)
}

func TestUnusualStatusCodes(t *testing.T) {
	m := New()
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusEarlyHints) // informational, not final
		w.WriteHeader(799)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	if text := scrape(t, m); !strings.Contains(text, `ra_api_http_requests_total{code="799",route="other"} 1`) {
		t.Fatalf("code 799 not recorded:\n%s", text)
	}
}

// discard is a ResponseWriter that allocates nothing.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

func benchmarkRouter(b *testing.B, m *Metrics) {
	h := newRouter(m)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discard{h: http.Header{}}
		r := httptest.NewRequest(http.MethodPost, "/api/metrics", nil)
		for pb.Next() {
			h.ServeHTTP(w, r)
		}
	})
}

// BenchmarkMiddleware is the cost the middleware adds to a chi route: compare
// with BenchmarkRouterBaseline (same router without it).
func BenchmarkMiddleware(b *testing.B) { benchmarkRouter(b, New()) }

// BenchmarkRouterBaseline is the chi router alone.
func BenchmarkRouterBaseline(b *testing.B) { benchmarkRouter(b, nil) }

// BenchmarkMiddlewareOnly is the middleware around a bare handler (no chi,
// so the route is "other"): its own cost without the router's.
func BenchmarkMiddlewareOnly(b *testing.B) {
	h := New().Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
	}))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discard{h: http.Header{}}
		r := httptest.NewRequest(http.MethodPost, "/api/metrics", nil)
		for pb.Next() {
			h.ServeHTTP(w, r)
		}
	})
}
