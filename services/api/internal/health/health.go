// Package health serves the api's probes: /livez says the process runs,
// /health says it can do its job (Redis answers PING within a second) and
// what a 201 is worth: the Redis durability (appendonly/appendfsync), read
// on every /health, exported as a gauge and warned about once when it is
// weaker than appendfsync always.
// A failing check says what failed in plain words ("redis":"unreachable");
// the error itself, which can carry addresses, goes only to the log, with
// the request id.
package health

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/store"
)

// Pinger is the one Redis call the liveness of Redis needs.
type Pinger interface {
	Ping(ctx context.Context) error
}

// PingFunc adapts a function to Pinger.
type PingFunc func(ctx context.Context) error

// Ping calls f.
func (f PingFunc) Ping(ctx context.Context) error { return f(ctx) }

// DurabilityReader reads what Redis promises for an acknowledged write;
// *store.Store implements it.
type DurabilityReader interface {
	Durability(ctx context.Context) (store.Durability, error)
}

var _ DurabilityReader = (*store.Store)(nil)

// Timeout bounds the Redis checks of one /health.
const Timeout = time.Second

type report struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
	// Durability is always, everysec, no (appendfsync no), off (appendonly
	// no) or unknown (CONFIG refused, or Redis did not answer).
	Durability store.Durability `json:"durability"`
}

// Options configure a Checker.
type Options struct {
	// Durability reads the Redis durability (nil: always "unknown").
	Durability DurabilityReader
	// Registerer receives the ra_api_redis_durability gauge (nil: none).
	Registerer prometheus.Registerer
	// Logger gets the one warning about a durability weaker than always
	// (nil: none).
	Logger *slog.Logger
}

// Checker answers /health and keeps the last durability read.
type Checker struct {
	redis Pinger
	opts  Options
	gauge *prometheus.GaugeVec

	mu     sync.Mutex
	last   store.Durability
	warned bool
}

// New returns the /health checker of redis.
func New(redis Pinger, opts Options) (*Checker, error) {
	c := &Checker{redis: redis, opts: opts, last: store.DurabilityUnknown,
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "ra_api", Name: "redis_durability",
			Help: "1 for what Redis promises about an acknowledged write (setting=always|everysec|no|off|unknown), read on every /health."},
			[]string{"setting"})}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(c.gauge); err != nil {
			return nil, err
		}
	}
	c.setGauge(store.DurabilityUnknown)
	return c, nil
}

// Handler answers GET /health with c: the checker for redis without
// durability, for callers that need only the PING check.
func Handler(redis Pinger) http.HandlerFunc {
	c, _ := New(redis, Options{})
	return c.ServeHTTP
}

// Start reads the durability once (within Timeout), so the gauge and the
// warning do not wait for the first /health. A Redis that does not answer
// yet is read again by every /health.
func (c *Checker) Start(ctx context.Context) store.Durability {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	return c.readDurability(ctx)
}

// Durability is the last durability read ("unknown" before the first).
func (c *Checker) Durability() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.last)
}

func (c *Checker) readDurability(ctx context.Context) store.Durability {
	if c.opts.Durability == nil {
		return store.DurabilityUnknown
	}
	d, err := c.opts.Durability.Durability(ctx)
	if err != nil {
		return store.DurabilityUnknown // Redis did not answer: the PING check says so
	}
	c.set(d)
	return d
}

// set records d, an answer of Redis, and warns the first time it is less
// than always (unknown included: CONFIG was refused, so nothing can be
// checked): a 201 then may not survive every crash.
func (c *Checker) set(d store.Durability) {
	c.mu.Lock()
	c.last = d
	warn := !c.warned && d.Weaker()
	c.warned = c.warned || warn
	c.mu.Unlock()
	c.setGauge(d)
	if warn && c.opts.Logger != nil {
		c.opts.Logger.Warn("Redis durability is weaker than appendfsync always: a 201 may not survive a crash",
			"durability", string(d), "want", "appendonly yes, appendfsync always")
	}
}

func (c *Checker) setGauge(d store.Durability) {
	for _, x := range store.Durabilities {
		v := 0.0
		if x == d {
			v = 1
		}
		c.gauge.WithLabelValues(string(x)).Set(v)
	}
}

// ServeHTTP answers GET /health: 200 when every check passes, else 503
// naming the failing check; the body carries the durability either way.
func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), Timeout)
	defer cancel()
	rep := report{Status: "ok", Checks: map[string]string{"redis": "ok"}, Durability: store.DurabilityUnknown}
	status := http.StatusOK
	if err := c.redis.Ping(ctx); err != nil {
		rep.Status = "unavailable"
		rep.Checks["redis"] = redisclient.Describe(err)
		status = http.StatusServiceUnavailable
		if c.opts.Logger != nil {
			c.opts.Logger.LogAttrs(r.Context(), slog.LevelWarn, "health check failed",
				slog.String("request_id", w.Header().Get("X-Request-Id")),
				slog.String("check", "redis"), slog.String("err", err.Error()))
		}
	} else {
		rep.Durability = c.readDurability(ctx)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(rep)
}

// Live answers GET /livez: the process is up.
func Live(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}
