// Package health serves the aggregator's small HTTP surface: GET /health
// (Redis answers PING and the consume loop is alive, with the group's pending
// count, lag and the time of the last batch), GET /livez (the process only)
// and GET /metrics (Prometheus). It also refreshes the lag and pending gauges
// periodically, so /metrics does not query Redis on every scrape.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/services/aggregator/internal/telemetry"
)

// Loop reports the consume loop's liveness; *consumer.Consumer implements it.
type Loop interface {
	LastBeat() time.Time
	LastBatch() time.Time
	StaleAfter() time.Duration
}

// Options configure a Checker; zero values get defaults.
type Options struct {
	// Stream and Group identify the group to report on. Required.
	Stream, Group string
	// Timeout bounds the Redis calls of one /health request (default 1s:
	// "PING within 1s").
	Timeout time.Duration
	// RefreshInterval is how often the lag and pending gauges are updated
	// (default 5s).
	RefreshInterval time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Metrics receives the gauges and is served on /metrics (default: a
	// private set).
	Metrics *telemetry.Metrics
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Checker answers health requests.
type Checker struct {
	rdb  redis.Cmdable
	loop Loop
	opts Options
}

// New returns a Checker.
func New(rdb redis.Cmdable, loop Loop, opts Options) (*Checker, error) {
	if opts.Stream == "" || opts.Group == "" {
		return nil, errors.New("health: Options.Stream and Group are required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = telemetry.New()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Checker{rdb: rdb, loop: loop, opts: opts}, nil
}

// Report is the /health body.
type Report struct {
	// Status is "ok" or "unavailable".
	Status string `json:"status"`
	// Checks maps each check (redis, consumer) to "ok" or what is wrong.
	Checks map[string]string `json:"checks"`
	// Pending is the group's pending-entries count (null when Redis did not
	// answer).
	Pending *int64 `json:"pending"`
	// Lag is the number of entries not yet delivered to the group, or
	// "unknown" when Redis cannot tell (XINFO GROUPS lag is nil after some
	// deletions and trims), or null when Redis did not answer.
	Lag any `json:"lag"`
	// LastBatchAt is when this replica last applied a batch (null: never).
	LastBatchAt *time.Time `json:"last_batch_at"`
}

// Check runs the checks once.
func (c *Checker) Check(ctx context.Context) (Report, bool) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	r := Report{Status: "ok", Checks: map[string]string{"redis": "ok", "consumer": "ok"}}
	healthy := true
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		r.Checks["redis"] = "unavailable: " + err.Error()
		healthy = false
	} else if g, err := c.group(ctx); err != nil {
		r.Checks["redis"] = "group unavailable: " + err.Error()
		healthy = false
	} else {
		r.Pending = &g.Pending
		if g.Lag < 0 {
			r.Lag = "unknown"
		} else {
			r.Lag = g.Lag
		}
	}
	if age := c.opts.Now().Sub(c.loop.LastBeat()); age > c.loop.StaleAfter() {
		r.Checks["consumer"] = fmt.Sprintf("stalled: no progress for %s", age.Round(time.Second))
		healthy = false
	}
	if t := c.loop.LastBatch(); !t.IsZero() {
		t = t.UTC()
		r.LastBatchAt = &t
	}
	if !healthy {
		r.Status = "unavailable"
	}
	return r, healthy
}

// group returns this group's XINFO GROUPS row.
func (c *Checker) group(ctx context.Context) (redis.XInfoGroup, error) {
	groups, err := c.rdb.XInfoGroups(ctx, c.opts.Stream).Result()
	if err != nil {
		return redis.XInfoGroup{}, fmt.Errorf("xinfo groups: %w", err)
	}
	for _, g := range groups {
		if g.Name == c.opts.Group {
			return g, nil
		}
	}
	return redis.XInfoGroup{}, fmt.Errorf("group %q does not exist yet", c.opts.Group)
}

// Handler serves /health, /livez and /metrics.
func (c *Checker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		rep, ok := c.Check(r.Context())
		status := http.StatusOK
		if !ok {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, rep)
	})
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /metrics", c.opts.Metrics.Handler())
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Run refreshes the lag and pending gauges every RefreshInterval until ctx
// ends. A failed refresh leaves the last values and is retried next tick.
func (c *Checker) Run(ctx context.Context) error {
	t := time.NewTicker(c.opts.RefreshInterval)
	defer t.Stop()
	for {
		c.refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (c *Checker) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	g, err := c.group(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.opts.Logger.Debug("gauge refresh failed", "err", err)
		}
		return
	}
	c.opts.Metrics.Pending.Set(float64(g.Pending))
	c.opts.Metrics.Lag.Set(float64(g.Lag))
}
