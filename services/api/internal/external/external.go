// Package external is the api's client of the external service behind
// GET /api/external-data: one GET to EXTERNAL_SERVICE_URL (or a built-in
// simulator when it is empty) through a github.com/eapache/go-resiliency
// circuit breaker, plus the HTTP handlers of /api/external-data and
// /api/external-data/circuit.
//
// # What counts as a failure
//
// A transport error, a non-2xx status, a body that is not JSON, and a call
// that exceeds EXTERNAL_TIMEOUT are failures. A client that goes away (the
// incoming request's context ends during the call) is not: the call is
// abandoned and the breaker does not hear of it. This works because
// go-resiliency ignores successes while closed, so the abandoned call
// reports nil, which changes nothing. A half-open probe instead runs on a
// context detached from its client (context.WithoutCancel, still bounded by
// EXTERNAL_TIMEOUT), so the probe always yields a real verdict.
//
// # go-resiliency semantics (v1.7)
//
//   - One duration, CIRCUIT_RESET_TIMEOUT, is both the error window and the
//     open period. CLOSED opens after CIRCUIT_FAILURE_THRESHOLD errors, each
//     within the reset timeout of the previous one. Successes do not reset
//     the error count: only a gap of one reset timeout without errors does.
//   - OPEN rejects every call (breaker.ErrBreakerOpen) and turns HALF_OPEN
//     after the reset timeout, from a timer goroutine (its clock cannot be
//     injected; tests use ~100ms).
//   - HALF_OPEN closes after CIRCUIT_SUCCESS_THRESHOLD consecutive successes
//     and re-opens on one error.
//   - A call's result is applied to the state the breaker is in when the
//     call returns. A call started while CLOSED that returned during
//     HALF_OPEN would count as a probe; EXTERNAL_TIMEOUT < CIRCUIT_RESET_TIMEOUT
//     (enforced by config and by New) makes that impossible.
//   - It lets every call through while HALF_OPEN. Client adds the missing
//     guard: a semaphore of weight 1 lets one probe run at a time and every
//     concurrent caller gets the fallback at once (state HALF_OPEN).
//   - It has no state-change callback and no record of when it opened.
//     Client observes the state before and after every call, on every
//     /circuit request and from Run's poll loop, logs each change once,
//     exports it (telemetry.BreakerTransition) and records the time it saw
//     OPEN, which gives Retry-After: the whole seconds until the breaker turns
//     half-open, at least 1.
package external

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eapache/go-resiliency/breaker"
	"golang.org/x/sync/semaphore"

	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/telemetry"
)

// circuit_state values, as DESIGN.md spells them.
const (
	StateClosed   = telemetry.StateClosed
	StateOpen     = telemetry.StateOpen
	StateHalfOpen = telemetry.StateHalfOpen
)

// FallbackMessage is the message of every 503 from /api/external-data.
const FallbackMessage = "Fallback response: External service unavailable"

// MaxBodyBytes is the largest external response accepted.
const MaxBodyBytes = 1 << 20

var (
	// ErrOpen is returned without calling out while the circuit is open.
	ErrOpen = breaker.ErrBreakerOpen
	// ErrProbeInFlight is returned without calling out while the circuit is
	// half-open and another caller's probe is running.
	ErrProbeInFlight = errors.New("circuit half-open: a probe is already in flight")
	// ErrBadStatus wraps a non-2xx answer.
	ErrBadStatus = errors.New("external service answered a non-2xx status")
	// ErrBadBody is an answer that is not JSON or is too large.
	ErrBadBody = errors.New("external service answered an invalid body")
	// ErrSimulated is a failure of the built-in simulator.
	ErrSimulated = errors.New("simulated external service failure")
	// ErrTimeout is the cause of a call that exceeded EXTERNAL_TIMEOUT.
	ErrTimeout = errors.New("external service timed out")
)

// Options are the optional dependencies of a Client.
type Options struct {
	// HTTPClient makes the outbound call (default: a client with its own
	// transport; the timeout comes from the context).
	HTTPClient *http.Client
	// Rand returns a number in [0,1) for the simulator (default math/rand/v2).
	Rand func() float64
	// Logger receives transition logs (default slog.Default()).
	Logger *slog.Logger
	// PollInterval is how often Run looks at the breaker state (default a
	// quarter of the reset timeout, at most 1s, at least 10ms).
	PollInterval time.Duration
}

// Client calls the external service through the circuit breaker. It is
// safe for concurrent use.
type Client struct {
	ext     config.External
	circuit config.Circuit
	opts    Options
	m       *telemetry.Metrics

	brk   *breaker.Breaker
	probe *semaphore.Weighted

	lastState atomic.Uint32 // breaker.State last observed
	mu        sync.Mutex    // serialises transitions and guards openedAt
	openedAt  time.Time
}

// New returns a client for ext (EXTERNAL_*) and circuit (CIRCUIT_*). m may be
// nil.
func New(ext config.External, circuit config.Circuit, m *telemetry.Metrics, opts Options) (*Client, error) {
	switch {
	case ext.Timeout <= 0:
		return nil, fmt.Errorf("EXTERNAL_TIMEOUT: must be > 0, got %s", ext.Timeout)
	case ext.FailureRate < 0 || ext.FailureRate > 1:
		return nil, fmt.Errorf("EXTERNAL_FAILURE_RATE: must be 0..1, got %v", ext.FailureRate)
	case circuit.FailureThreshold < 1:
		return nil, fmt.Errorf("CIRCUIT_FAILURE_THRESHOLD: must be >= 1, got %d", circuit.FailureThreshold)
	case circuit.SuccessThreshold < 1:
		return nil, fmt.Errorf("CIRCUIT_SUCCESS_THRESHOLD: must be >= 1, got %d", circuit.SuccessThreshold)
	case ext.Timeout >= circuit.ResetTimeout:
		return nil, fmt.Errorf("EXTERNAL_TIMEOUT: must be shorter than CIRCUIT_RESET_TIMEOUT (%s), got %s", circuit.ResetTimeout, ext.Timeout)
	}
	if opts.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32
		opts.HTTPClient = &http.Client{Transport: tr}
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = min(max(circuit.ResetTimeout/4, 10*time.Millisecond), time.Second)
	}
	c := &Client{
		ext:     ext,
		circuit: circuit,
		opts:    opts,
		m:       m,
		brk:     breaker.New(circuit.FailureThreshold, circuit.SuccessThreshold, circuit.ResetTimeout),
		probe:   semaphore.NewWeighted(1),
	}
	c.lastState.Store(uint32(breaker.Closed))
	m.SetBreakerState(StateClosed)
	return c, nil
}

// Simulated reports whether the built-in simulator stands in for the
// external service (EXTERNAL_SERVICE_URL is empty).
func (c *Client) Simulated() bool { return c.ext.URL == "" }

// Run polls the breaker state until ctx ends, so transitions the breaker
// makes on its own (OPEN → HALF_OPEN after the reset timeout) are logged and
// exported when they happen, not at the next request. It returns nil.
func (c *Client) Run(ctx context.Context) error {
	t := time.NewTicker(c.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.observe()
		}
	}
}

// State is the current circuit_state (CLOSED, OPEN or HALF_OPEN).
func (c *Client) State() string { return stateName(c.observe()) }

// RetryAfter is how long until an open circuit lets a probe through, rounded
// up to whole seconds and at least 1s. It is 0 when the circuit is not open.
func (c *Client) RetryAfter() time.Duration {
	if c.observe() != breaker.Open {
		return 0
	}
	c.mu.Lock()
	opened := c.openedAt
	c.mu.Unlock()
	left := c.circuit.ResetTimeout
	if !opened.IsZero() {
		left = time.Until(opened.Add(c.circuit.ResetTimeout))
	}
	secs := math.Ceil(left.Seconds())
	return time.Duration(max(secs, 1)) * time.Second
}

// Fetch calls the external service through the breaker and returns its JSON
// body. Errors: ErrOpen and ErrProbeInFlight (not called), the call's
// failure (counted by the breaker), or the caller's context error when the
// caller went away (not counted).
func (c *Client) Fetch(ctx context.Context) (json.RawMessage, error) {
	state := c.observe()
	if state == breaker.Open {
		return nil, ErrOpen
	}
	probe := false
	if state == breaker.HalfOpen {
		if !c.probe.TryAcquire(1) {
			return nil, ErrProbeInFlight
		}
		defer c.probe.Release(1)
		// The previous probe may have finished between the two looks.
		switch c.observe() {
		case breaker.Open:
			return nil, ErrOpen
		case breaker.HalfOpen:
			probe = true
		}
	}

	var (
		data json.RawMessage
		gone error
	)
	err := c.brk.Run(func() error {
		callCtx := ctx
		if probe {
			callCtx = context.WithoutCancel(ctx)
		}
		d, err := c.call(callCtx)
		if err != nil && !probe && ctx.Err() != nil {
			// The client went away: not the upstream's fault. nil is a
			// no-op for a closed go-resiliency breaker.
			gone = ctx.Err()
			return nil
		}
		data = d
		return err
	})
	c.observe()
	if gone != nil {
		return nil, gone
	}
	if err != nil {
		c.opts.Logger.DebugContext(ctx, "external call failed", "err", err, "probe", probe)
		return nil, err
	}
	return data, nil
}

// call makes one bounded call to the service or the simulator.
func (c *Client) call(ctx context.Context) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.ext.Timeout, ErrTimeout)
	defer cancel()
	if c.Simulated() {
		return c.simulate(ctx)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.ext.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("build external request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		if errors.Is(context.Cause(ctx), ErrTimeout) {
			return nil, fmt.Errorf("%w after %s", ErrTimeout, c.ext.Timeout)
		}
		return nil, fmt.Errorf("call external service: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	if err != nil {
		if errors.Is(context.Cause(ctx), ErrTimeout) {
			return nil, fmt.Errorf("%w after %s reading the body", ErrTimeout, c.ext.Timeout)
		}
		return nil, fmt.Errorf("read external response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("%w: %d", ErrBadStatus, resp.StatusCode)
	}
	if len(body) > MaxBodyBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadBody, MaxBodyBytes)
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("%w: not JSON", ErrBadBody)
	}
	return body, nil
}

// simulate stands in for the external service: EXTERNAL_LATENCY, then a
// failure with probability EXTERNAL_FAILURE_RATE.
func (c *Client) simulate(ctx context.Context) (json.RawMessage, error) {
	if c.ext.Latency > 0 {
		t := time.NewTimer(c.ext.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if errors.Is(context.Cause(ctx), ErrTimeout) {
				return nil, fmt.Errorf("%w after %s", ErrTimeout, c.ext.Timeout)
			}
			return nil, ctx.Err()
		}
	}
	if c.opts.Rand() < c.ext.FailureRate {
		return nil, ErrSimulated
	}
	return json.Marshal(struct {
		Source      string  `json:"source"`
		Value       float64 `json:"value"`
		GeneratedAt string  `json:"generated_at"`
	}{"simulator", math.Round(c.opts.Rand()*10000) / 100, time.Now().UTC().Format(time.RFC3339Nano)})
}

// observe reads the breaker state and, on a change since the last look,
// logs the transition once, exports it and records when it opened.
func (c *Client) observe() breaker.State {
	st := c.brk.GetState()
	if uint32(st) == c.lastState.Load() {
		return st
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Look again under the lock so concurrent observers record changes in
	// the order they happened.
	st = c.brk.GetState()
	from := breaker.State(c.lastState.Load())
	if st == from {
		return st
	}
	c.lastState.Store(uint32(st))
	if st == breaker.Open {
		c.openedAt = time.Now()
	}
	fromName, toName := stateName(from), stateName(st)
	c.m.BreakerTransition(fromName, toName)
	level := slog.LevelInfo
	if st == breaker.Open {
		level = slog.LevelWarn
	}
	c.opts.Logger.Log(context.Background(), level, "circuit breaker state changed",
		"from", fromName, "to", toName, "reset_timeout", c.circuit.ResetTimeout)
	return st
}

func stateName(s breaker.State) string {
	switch s {
	case breaker.Open:
		return StateOpen
	case breaker.HalfOpen:
		return StateHalfOpen
	default:
		return StateClosed
	}
}
