package external

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/telemetry"
)

// Upstream behaviours.
const (
	healthy int32 = iota
	failing       // 500
	slow          // answers only when the caller gives up
	gated         // signals entered, waits for release
	notJSON       // 200 with a non-JSON body
)

const upstreamBody = `{"temperature":21.5,"unit":"C"}`

// upstream is an httptest external service switchable between behaviours.
type upstream struct {
	srv     *httptest.Server
	mode    atomic.Int32
	calls   atomic.Int64
	entered chan struct{}
	release chan struct{}
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{entered: make(chan struct{}, 100), release: make(chan struct{})}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		switch u.mode.Load() {
		case failing:
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		case slow:
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		case gated:
			u.entered <- struct{}{}
			select {
			case <-u.release:
			case <-r.Context().Done():
				return
			}
		case notJSON:
			_, _ = w.Write([]byte("<html>"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(upstreamBody))
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// logBuffer is a concurrency-safe sink for a JSON slog handler.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

type fixture struct {
	c    *Client
	up   *upstream
	m    *telemetry.Metrics
	logs *logBuffer
}

func mustClient(t *testing.T, timeout, reset time.Duration) *fixture {
	t.Helper()
	up := newUpstream(t)
	m := telemetry.New()
	logs := &logBuffer{}
	c, err := New(
		config.External{URL: up.srv.URL, Timeout: timeout},
		config.Circuit{FailureThreshold: 3, SuccessThreshold: 1, ResetTimeout: reset},
		m,
		Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))},
	)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &fixture{c: c, up: up, m: m, logs: logs}
}

func (f *fixture) mustState(t *testing.T, want string) {
	t.Helper()
	if got := f.c.State(); got != want {
		t.Fatalf("state %s, want %s", got, want)
	}
}

// waitState polls until the breaker reaches want (it has no callback).
func (f *fixture) waitState(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.c.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("state %s after 5s, want %s", f.c.State(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// open trips the breaker with three failures.
func (f *fixture) open(t *testing.T) {
	t.Helper()
	mode := f.up.mode.Load()
	f.up.mode.Store(failing)
	for range 3 {
		if _, err := f.c.Fetch(context.Background()); err == nil {
			t.Fatalf("Fetch against a failing service succeeded")
		}
	}
	f.up.mode.Store(mode)
	f.mustState(t, StateOpen)
}

func serve(h http.Handler) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/external-data", nil))
	return rec
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	good := config.Circuit{FailureThreshold: 3, SuccessThreshold: 1, ResetTimeout: time.Second}
	tests := []struct {
		name string
		ext  config.External
		circ config.Circuit
	}{
		{"timeout not below reset", config.External{Timeout: time.Second}, good},
		{"zero timeout", config.External{}, good},
		{"failure rate above 1", config.External{Timeout: time.Millisecond, FailureRate: 1.5}, good},
		{"zero failure threshold", config.External{Timeout: time.Millisecond}, config.Circuit{SuccessThreshold: 1, ResetTimeout: time.Second}},
		{"zero success threshold", config.External{Timeout: time.Millisecond}, config.Circuit{FailureThreshold: 1, ResetTimeout: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.ext, tt.circ, nil, Options{}); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestSuccessBody(t *testing.T) {
	f := mustClient(t, time.Second, 2*time.Second)
	rec := serve(f.c.DataHandler())
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	want := `{"circuit_state":"CLOSED","data":` + upstreamBody + "}\n"
	if rec.Body.String() != want {
		t.Fatalf("body %s, want %s", rec.Body, want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
}

func TestFailuresThatCount(t *testing.T) {
	tests := []struct {
		name    string
		mode    int32
		wantErr error
	}{
		{"5xx", failing, ErrBadStatus},
		{"not JSON", notJSON, ErrBadBody},
		{"timeout", slow, ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustClient(t, 50*time.Millisecond, 2*time.Second)
			f.up.mode.Store(tt.mode)
			for i := range 3 {
				start := time.Now()
				_, err := f.c.Fetch(context.Background())
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("call %d: err %v, want %v", i+1, err, tt.wantErr)
				}
				// Bounded: far below the 5s the slow service would take.
				if d := time.Since(start); d > 4*time.Second {
					t.Fatalf("call %d took %s: not bounded by EXTERNAL_TIMEOUT", i+1, d)
				}
				want := StateClosed
				if i == 2 {
					want = StateOpen
				}
				f.mustState(t, want)
			}
		})
	}
}

func TestOpenAfterThreeFailuresStopsCalling(t *testing.T) {
	f := mustClient(t, 50*time.Millisecond, 150*time.Millisecond)
	f.up.mode.Store(failing)
	h := f.c.DataHandler()
	for i, wantState := range []string{StateClosed, StateClosed, StateOpen} {
		rec := serve(h)
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("call %d: status %d", i+1, rec.Code)
		}
		var body map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if body["circuit_state"] != wantState {
			t.Fatalf("call %d: circuit_state %v, want %s", i+1, body["circuit_state"], wantState)
		}
		if got := rec.Header().Get("Retry-After"); (got != "") != (wantState == StateOpen) {
			t.Fatalf("call %d in %s: Retry-After %q", i+1, wantState, got)
		}
	}
	if n := f.up.calls.Load(); n != 3 {
		t.Fatalf("%d outbound calls, want 3", n)
	}

	f.up.mode.Store(healthy)
	for range 10 {
		rec := serve(h)
		if rec.Code != http.StatusServiceUnavailable {
			if f.c.State() == StateOpen {
				t.Fatalf("open circuit answered %d", rec.Code)
			}
			break // the reset timeout passed: fine, stop here
		}
		if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra < 1 {
			t.Fatalf("Retry-After %q, want whole seconds >= 1", rec.Header().Get("Retry-After"))
		}
	}
	if n := f.up.calls.Load(); n > 3 && f.c.State() == StateOpen {
		t.Fatalf("open circuit called out: %d calls", n)
	}

	f.waitState(t, StateHalfOpen)
	if n := f.up.calls.Load(); n != 3 {
		t.Fatalf("%d outbound calls before the reset timeout, want 3", n)
	}
	// A successful probe closes it.
	if rec := serve(h); rec.Code != http.StatusOK {
		t.Fatalf("probe: status %d: %s", rec.Code, rec.Body)
	}
	f.mustState(t, StateClosed)
}

func TestHalfOpenLetsOneProbeThrough(t *testing.T) {
	f := mustClient(t, time.Second, 1200*time.Millisecond)
	f.open(t)
	f.waitState(t, StateHalfOpen)
	before := f.up.calls.Load()

	f.up.mode.Store(gated)
	probeErr := make(chan error, 1)
	go func() {
		_, err := f.c.Fetch(context.Background())
		probeErr <- err
	}()
	<-f.up.entered // the probe is at the service

	const others = 20
	var wg sync.WaitGroup
	errs := make([]error, others)
	for i := range others {
		wg.Go(func() { _, errs[i] = f.c.Fetch(context.Background()) })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrProbeInFlight) {
			t.Fatalf("concurrent caller %d: err %v, want ErrProbeInFlight", i, err)
		}
	}
	rec := serve(f.c.DataHandler())
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"circuit_state":"HALF_OPEN"`) {
		t.Fatalf("handler during the probe: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("Retry-After") != "" {
		t.Fatalf("Retry-After while half-open: %q", rec.Header().Get("Retry-After"))
	}

	close(f.up.release)
	if err := <-probeErr; err != nil {
		t.Fatalf("probe: %v", err)
	}
	if n := f.up.calls.Load() - before; n != 1 {
		t.Fatalf("%d outbound calls while half-open, want 1", n)
	}
	f.mustState(t, StateClosed)
}

func TestFailingProbeReopens(t *testing.T) {
	f := mustClient(t, 50*time.Millisecond, 150*time.Millisecond)
	f.open(t)
	f.waitState(t, StateHalfOpen)
	f.up.mode.Store(failing)
	rec := serve(f.c.DataHandler())
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"circuit_state":"OPEN"`) {
		t.Fatalf("failed probe: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("Retry-After %q, want 1", rec.Header().Get("Retry-After"))
	}
	f.mustState(t, StateOpen)
	calls := f.up.calls.Load()
	if _, err := f.c.Fetch(context.Background()); !errors.Is(err, ErrOpen) {
		t.Fatalf("after the failed probe: err %v, want ErrOpen", err)
	}
	if f.up.calls.Load() != calls {
		t.Fatal("re-opened circuit called out")
	}
}

func TestClientGoneIsNotAFailure(t *testing.T) {
	f := mustClient(t, time.Second, 2*time.Second)
	f.up.mode.Store(slow)
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		_, err := f.c.Fetch(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want the caller's context error", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.c.Fetch(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	f.mustState(t, StateClosed)

	// Two real failures still leave it closed: the abandoned calls did not count.
	f.up.mode.Store(failing)
	for range 2 {
		_, _ = f.c.Fetch(context.Background())
	}
	f.mustState(t, StateClosed)
}

func TestFallbackBodyMatchesDesign(t *testing.T) {
	f := mustClient(t, 50*time.Millisecond, 2*time.Second)
	f.up.mode.Store(failing)
	rec := serve(f.c.DataHandler())
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d", rec.Code)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if got := string(body["message"]); got != `"Fallback response: External service unavailable"` {
		t.Fatalf("message %s", got)
	}
	if got := string(body["circuit_state"]); got != `"CLOSED"` {
		t.Fatalf("circuit_state %s", got)
	}
	// It is also an RFC 9457 problem.
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q", ct)
	}
	if string(body["status"]) != "503" || !strings.HasSuffix(string(body["type"]), `/external-unavailable"`) {
		t.Fatalf("problem members %s", rec.Body)
	}
	for _, s := range []string{StateClosed, StateOpen, StateHalfOpen} {
		if s != strings.ToUpper(s) || strings.Contains(s, "-") {
			t.Fatalf("state %q is not spelled as DESIGN.md", s)
		}
	}
	if StateClosed != "CLOSED" || StateOpen != "OPEN" || StateHalfOpen != "HALF_OPEN" {
		t.Fatal("circuit_state values differ from DESIGN.md")
	}
}

func TestCircuitHandlerDoesNotCallOut(t *testing.T) {
	f := mustClient(t, 50*time.Millisecond, 2*time.Second)
	for _, want := range []string{StateClosed, StateOpen} {
		if want == StateOpen {
			f.open(t)
		}
		calls := f.up.calls.Load()
		rec := httptest.NewRecorder()
		f.c.CircuitHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/external-data/circuit", nil))
		if rec.Code != http.StatusOK || rec.Body.String() != `{"circuit_state":"`+want+`"}`+"\n" {
			t.Fatalf("circuit: %d %s, want %s", rec.Code, rec.Body, want)
		}
		if f.up.calls.Load() != calls {
			t.Fatal("/circuit called the external service")
		}
	}
}

func TestTransitionsLoggedOnceAndExported(t *testing.T) {
	f := mustClient(t, 50*time.Millisecond, 150*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	f.open(t)
	f.waitState(t, StateHalfOpen)
	for range 50 {
		_ = f.c.State() // many observers, one log line per change
	}
	if _, err := f.c.Fetch(context.Background()); err != nil {
		t.Fatalf("probe: %v", err)
	}
	f.mustState(t, StateClosed)

	for _, tr := range [][2]string{{StateClosed, StateOpen}, {StateOpen, StateHalfOpen}, {StateHalfOpen, StateClosed}} {
		line := `"from":"` + tr[0] + `","to":"` + tr[1] + `"`
		if n := f.logs.count(line); n != 1 {
			t.Errorf("transition %s→%s logged %d times, want 1", tr[0], tr[1], n)
		}
	}
	rec := httptest.NewRecorder()
	f.m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{
		`ra_api_circuit_breaker_transitions_total{from="CLOSED",to="OPEN"} 1`,
		`ra_api_circuit_breaker_transitions_total{from="OPEN",to="HALF_OPEN"} 1`,
		`ra_api_circuit_breaker_transitions_total{from="HALF_OPEN",to="CLOSED"} 1`,
		`ra_api_circuit_breaker_state{state="CLOSED"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestSimulator(t *testing.T) {
	tests := []struct {
		name     string
		rate     float64
		draw     float64
		latency  time.Duration
		wantCode int
	}{
		{"never fails", 0, 0, 0, http.StatusOK},
		{"always fails", 1, 0.999, 0, http.StatusServiceUnavailable},
		{"draw below the rate fails", 0.5, 0.49, 0, http.StatusServiceUnavailable},
		{"draw at the rate succeeds", 0.5, 0.5, 0, http.StatusOK},
		{"latency within the timeout", 0, 0, 5 * time.Millisecond, http.StatusOK},
		{"latency past the timeout fails", 0, 0, time.Second, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(
				config.External{Timeout: 50 * time.Millisecond, FailureRate: tt.rate, Latency: tt.latency},
				config.Circuit{FailureThreshold: 3, SuccessThreshold: 1, ResetTimeout: time.Second},
				nil, Options{Rand: func() float64 { return tt.draw }},
			)
			if err != nil {
				t.Fatal(err)
			}
			if !c.Simulated() {
				t.Fatal("no URL but not simulated")
			}
			rec := serve(c.DataHandler())
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantCode == http.StatusOK {
				var body struct {
					State string `json:"circuit_state"`
					Data  struct {
						Source string `json:"source"`
					} `json:"data"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.State != StateClosed || body.Data.Source != "simulator" {
					t.Fatalf("body %s", rec.Body)
				}
			}
		})
	}
}
