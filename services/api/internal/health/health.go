// Package health serves the api's probes: /livez says the process runs,
// /health says it can do its job (Redis answers PING within a second).
// A failing check says what failed in plain words ("redis":"unreachable");
// the error itself, which can carry addresses, goes only to the log, with
// the request id.
package health

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/resilientanalytics/ra/pkg/redisclient"
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
// the failing check in plain words; log (nil: none) gets the cause.
func Handler(redis Pinger, log *slog.Logger) http.HandlerFunc {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), Timeout)
		defer cancel()
		rep := report{Status: "ok", Checks: map[string]string{"redis": "ok"}}
		status := http.StatusOK
		if err := redis.Ping(ctx); err != nil {
			rep.Status = "unavailable"
			rep.Checks["redis"] = redisclient.Describe(err)
			status = http.StatusServiceUnavailable
			log.LogAttrs(r.Context(), slog.LevelWarn, "health check failed",
				slog.String("request_id", w.Header().Get("X-Request-Id")),
				slog.String("check", "redis"), slog.String("err", err.Error()))
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
