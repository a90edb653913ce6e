// Package health serves the api's probes: /livez says the process runs,
// /health says it can do its job (Redis answers PING within a second).
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Pinger is the one Redis call health needs.
type Pinger interface {
	Ping(ctx context.Context) error
}

// PingFunc adapts a function to Pinger.
type PingFunc func(ctx context.Context) error

// Ping calls f.
func (f PingFunc) Ping(ctx context.Context) error { return f(ctx) }

// Timeout bounds the Redis check.
const Timeout = time.Second

type report struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// Handler answers GET /health: 200 when every check passes, else 503 naming
// the failing check.
func Handler(redis Pinger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), Timeout)
		defer cancel()
		rep := report{Status: "ok", Checks: map[string]string{"redis": "ok"}}
		status := http.StatusOK
		if err := redis.Ping(ctx); err != nil {
			rep.Status = "unavailable"
			rep.Checks["redis"] = "failing: " + err.Error()
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(rep)
	}
}

// Live answers GET /livez: the process is up.
func Live(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}
