package external

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/resilientanalytics/ra/pkg/problem"
)

// DataResponse is the 200 body of GET /api/external-data.
type DataResponse struct {
	CircuitState string          `json:"circuit_state"`
	Data         json.RawMessage `json:"data"`
}

// Fallback is the 503 body of GET /api/external-data: an RFC 9457 problem
// (type .../external-unavailable) whose extension members circuit_state and
// message are exactly those DESIGN.md specifies.
type Fallback struct {
	problem.Problem
	// CircuitState is the state after the attempt: CLOSED (the call failed
	// but the circuit is still closed), OPEN (rejected, or this failure
	// opened it) or HALF_OPEN (another caller's probe is in flight, or
	// more successful probes are needed).
	CircuitState string `json:"circuit_state"`
	// Message is always FallbackMessage.
	Message string `json:"message"`
}

// CircuitResponse is the body of GET /api/external-data/circuit.
type CircuitResponse struct {
	CircuitState string `json:"circuit_state"`
}

// DataHandler serves GET /api/external-data: 200 with the external data, or
// 503 with the fallback body (and Retry-After while the circuit is open).
func (c *Client) DataHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := c.Fetch(r.Context())
		state := c.State()
		w.Header().Set("Cache-Control", "no-store")
		if err == nil {
			writeJSON(w, http.StatusOK, "application/json", DataResponse{CircuitState: state, Data: data})
			return
		}
		if state == StateOpen {
			w.Header().Set("Retry-After", strconv.FormatInt(int64(c.RetryAfter().Seconds()), 10))
		}
		p := problem.New(http.StatusServiceUnavailable, "external-unavailable", "External service unavailable",
			fallbackDetail(err))
		p.Instance = r.URL.Path
		p.RequestID = w.Header().Get("X-Request-Id")
		writeJSON(w, http.StatusServiceUnavailable, "application/problem+json",
			Fallback{Problem: p, CircuitState: state, Message: FallbackMessage})
	})
}

// CircuitHandler serves GET /api/external-data/circuit: the state, without
// calling out.
func (c *Client) CircuitHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, "application/json", CircuitResponse{CircuitState: c.State()})
	})
}

// fallbackDetail says why, without leaking upstream internals.
func fallbackDetail(err error) string {
	switch {
	case errors.Is(err, ErrOpen):
		return "the circuit breaker is open; the external service is not being called"
	case errors.Is(err, ErrProbeInFlight):
		return "the circuit breaker is half-open and a trial request is in flight"
	default:
		return "the external service failed or timed out"
	}
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
