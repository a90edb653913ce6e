// Package health serves the aggregator's small HTTP surface: GET /health
// (Redis answers PING and the consume loop of every partition is alive, with
// the group's pending count and lag per partition and in total, and the time
// of the last batch), GET /livez (the process only) and GET /metrics
// (Prometheus). It also refreshes the lag and pending gauges periodically,
// so /metrics does not query Redis on every scrape.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/internal/telemetry"
)

// Loop reports the consume loop's liveness; *consumer.Consumer implements it.
type Loop interface {
	LastBeat() time.Time
	LastBatch() time.Time
	StaleAfter() time.Duration
}

// Group reports on one partition's consumer group; *store.Group
// implements it.
type Group interface {
	Info(ctx context.Context) (store.GroupInfo, error)
}

var _ Group = (*store.Group)(nil)

// Pinger checks Redis; *store.Store implements it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Partition is one partition to report on: its stream, group and consume
// loop.
type Partition struct {
	// Index is the partition number p (the label in /metrics).
	Index int
	// Stream is the partition's stream key (reported in /health).
	Stream string
	// Group is the partition's consumer group.
	Group Group
	// Loop is the partition's consume loop.
	Loop Loop
}

// Options configure a Checker; zero values get defaults.
type Options struct {
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
	redis Pinger
	parts []Partition
	opts  Options
}

// New returns a Checker for the partitions parts (at least one).
func New(redis Pinger, parts []Partition, opts Options) (*Checker, error) {
	if redis == nil || len(parts) == 0 {
		return nil, errors.New("health: a Pinger and a partition are required")
	}
	for _, p := range parts {
		if p.Stream == "" || p.Group == nil || p.Loop == nil {
			return nil, fmt.Errorf("health: partition %d needs a Stream, a Group and a Loop", p.Index)
		}
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
	return &Checker{redis: redis, parts: parts, opts: opts}, nil
}

// Report is the /health body.
type Report struct {
	// Status is "ok" or "unavailable".
	Status string `json:"status"`
	// Checks maps each check (redis, consumer) to "ok" or what is wrong.
	Checks map[string]string `json:"checks"`
	// Pending is the group's pending-entries count over all partitions
	// (null when Redis did not answer for one of them).
	Pending *int64 `json:"pending"`
	// Lag is the number of entries not yet delivered to the group over all
	// partitions (counted after the group's last-delivered id, so it
	// returns to 0 also after a Redis restart from the AOF, which loses
	// XINFO's own figure), or "unknown" when a partition is more than
	// store.LagCountCap behind and XINFO has no figure either, or null
	// when Redis did not answer.
	Lag any `json:"lag"`
	// LastBatchAt is when this replica last applied a batch in any
	// partition (null: never).
	LastBatchAt *time.Time `json:"last_batch_at"`
	// Partitions reports each partition on its own.
	Partitions []PartitionReport `json:"partitions"`
}

// PartitionReport is one partition's share of the Report; the fields mean
// what the Report's do, for that partition's stream and loop.
type PartitionReport struct {
	Partition   int        `json:"partition"`
	Stream      string     `json:"stream"`
	Status      string     `json:"status"`
	Pending     *int64     `json:"pending"`
	Lag         any        `json:"lag"`
	LastBatchAt *time.Time `json:"last_batch_at"`
}

// Check runs the checks once. A partition whose group Redis cannot report
// (its node is down on a cluster) or whose loop stalled makes the replica
// unhealthy: entries of that partition are not being applied.
func (c *Checker) Check(ctx context.Context) (Report, bool) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	r := Report{Status: "ok", Checks: map[string]string{"redis": "ok", "consumer": "ok"}}
	healthy := true
	// Every check says what failed in plain words; the errors, which can
	// carry addresses, go only to the log.
	pingErr := c.redis.Ping(ctx)
	if pingErr != nil {
		r.Checks["redis"] = redisclient.Describe(pingErr)
		healthy = false
		c.logFailure(ctx, "redis", -1, pingErr)
	}
	var pending, lag int64
	lagKnown, counted := true, true
	for _, p := range c.parts {
		pr := PartitionReport{Partition: p.Index, Stream: p.Stream, Status: "ok"}
		if pingErr != nil {
			counted = false
			pr.Status = "unavailable"
		} else if g, err := p.Group.Info(ctx); err != nil {
			msg := "consumer group unreadable: " + redisclient.Describe(err)
			if errors.Is(err, store.ErrNoGroup) {
				msg = "consumer group missing"
			}
			if r.Checks["redis"] == "ok" {
				r.Checks["redis"] = fmt.Sprintf("partition %d: %s", p.Index, msg)
			}
			healthy, counted = false, false
			pr.Status = msg
			c.logFailure(ctx, "group", p.Index, err)
		} else {
			pr.Pending = &g.Pending
			pending += g.Pending
			if g.Lag < 0 {
				pr.Lag, lagKnown = "unknown", false
			} else {
				pr.Lag = g.Lag
				lag += g.Lag
			}
		}
		if age := c.opts.Now().Sub(p.Loop.LastBeat()); age > p.Loop.StaleAfter() {
			msg := fmt.Sprintf("stalled: no progress for %s", age.Round(time.Second))
			if r.Checks["consumer"] == "ok" {
				r.Checks["consumer"] = msg
				if len(c.parts) > 1 {
					r.Checks["consumer"] = fmt.Sprintf("%s (partition %d)", msg, p.Index)
				}
			}
			pr.Status = msg
			healthy = false
		}
		if t := p.Loop.LastBatch(); !t.IsZero() {
			t = t.UTC()
			pr.LastBatchAt = &t
			if r.LastBatchAt == nil || t.After(*r.LastBatchAt) {
				r.LastBatchAt = &t
			}
		}
		r.Partitions = append(r.Partitions, pr)
	}
	if counted {
		r.Pending = &pending
		if lagKnown {
			r.Lag = lag
		} else {
			r.Lag = "unknown"
		}
	}
	if !healthy {
		r.Status = "unavailable"
	}
	return r, healthy
}

func (c *Checker) logFailure(ctx context.Context, check string, partition int, err error) {
	attrs := []slog.Attr{slog.String("check", check), slog.String("err", err.Error())}
	if id, ok := ctx.Value(requestIDKey{}).(string); ok && id != "" {
		attrs = append(attrs, slog.String("request_id", id))
	}
	if partition >= 0 {
		attrs = append(attrs, slog.Int("partition", partition))
	}
	c.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "health check failed", attrs...)
}

// requestIDKey carries the X-Request-ID a prober sent, for the log line.
type requestIDKey struct{}

// Handler serves /health, /livez and /metrics.
func (c *Checker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 200 {
			ctx = context.WithValue(ctx, requestIDKey{}, id)
			w.Header().Set("X-Request-Id", id)
		}
		rep, ok := c.Check(ctx)
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
	m := c.opts.Metrics
	var pending, lag int64
	complete, lagKnown := true, true
	for _, p := range c.parts {
		g, err := p.Group.Info(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.opts.Logger.Debug("gauge refresh failed", "partition", p.Index, "err", err)
			}
			complete = false
			continue
		}
		label := strconv.Itoa(p.Index)
		m.PartitionPending.WithLabelValues(label).Set(float64(g.Pending))
		m.PartitionLag.WithLabelValues(label).Set(float64(g.Lag))
		pending += g.Pending
		if g.Lag < 0 {
			lagKnown = false
		}
		lag += g.Lag
	}
	if !complete {
		return // the totals keep their last values, as a failed refresh did before
	}
	m.Pending.Set(float64(pending))
	if !lagKnown {
		lag = -1
	}
	m.Lag.Set(float64(lag))
}
