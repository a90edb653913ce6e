// Package system serves GET /api/system: the api's view of the machinery
// behind it, for the dashboard and for operators. It answers 200 even when
// Redis is down, because the breaker state is still worth seeing then:
//
//	{"redis":"ok","durability":"unknown","circuit_state":"CLOSED","group":"aggregators",
//	 "lag":0,"pending":0,"groups":[{"partition":0,"stream":"{metrics:0}:stream",
//	 "exists":true,"lag":0,"pending":0,"consumers":[{"name":"host-1","pending":0,"idle_ms":120}]}]}
//
// The consumer-group figures come from Groups (XINFO GROUPS and XINFO
// CONSUMERS, one pipeline each, in redis.go), read fresh on every request:
// it is an operator's view, asked for every few seconds at most.
package system

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/resilientanalytics/ra/pkg/redisclient"
)

// Timeout bounds the Redis reads of one request, as /health bounds its PING.
const Timeout = time.Second

// Group is one partition's consumer group as Redis reports it.
type Group struct {
	// Partition is p of the stream {<STREAM_KEY>:p}:stream.
	Partition int `json:"partition"`
	// Stream is the stream key.
	Stream string `json:"stream"`
	// Exists is false until an aggregator has created the group (or the
	// stream does not exist yet); the figures are then zero and lag null.
	Exists bool `json:"exists"`
	// Lag is how many entries of the stream the group has not read yet;
	// nil when Redis cannot tell (it then reports lag as null, e.g. after
	// entries were deleted or on a restart from an AOF on Redis 7.0).
	Lag *int64 `json:"lag"`
	// Pending is how many delivered entries are not acknowledged yet.
	Pending int64 `json:"pending"`
	// Consumers are the group's consumers, sorted as Redis lists them.
	Consumers []Consumer `json:"consumers"`
}

// Consumer is one consumer of a group.
type Consumer struct {
	// Name is the consumer name (CONSUMER_NAME, by default hostname-pid).
	Name string `json:"name"`
	// Pending is how many entries it was delivered and has not acknowledged.
	Pending int64 `json:"pending"`
	// IdleMs is the milliseconds since its last read or claim attempt.
	IdleMs int64 `json:"idle_ms"`
}

// Groups reads the consumer group of every partition.
type Groups interface {
	Groups(ctx context.Context) ([]Group, error)
}

// Pinger is the health check of Redis.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Report is the 200 body.
type Report struct {
	// Redis is "ok" or "failing: <what, in plain words>" (the /health
	// check, e.g. "failing: unreachable").
	Redis string `json:"redis"`
	// Durability is what a write acknowledged by Redis survives (always,
	// everysec, no, off) or "unknown" when the api does not know it.
	Durability string `json:"durability"`
	// CircuitState is the external-service breaker: CLOSED, OPEN or HALF_OPEN.
	CircuitState string `json:"circuit_state"`
	// Group is CONSUMER_GROUP.
	Group string `json:"group"`
	// Lag is the sum of the partitions' lags; nil when any is unknown or
	// the groups could not be read.
	Lag *int64 `json:"lag"`
	// Pending is the sum of the partitions' pending counts.
	Pending int64 `json:"pending"`
	// Groups are the partitions' groups; nil when they could not be read.
	Groups []Group `json:"groups"`
	// GroupsError says in plain words why the groups could not be read
	// (omitted when they were).
	GroupsError string `json:"groups_error,omitempty"`
}

// Options are the optional inputs of a Handler.
type Options struct {
	// Group is CONSUMER_GROUP, echoed in the report (default "aggregators").
	Group string
	// Durability reports the Redis durability; nil reports "unknown".
	Durability func() string
	// Logger gets the causes of failed reads (nil: not logged).
	Logger *slog.Logger
}

// Handler serves GET /api/system.
type Handler struct {
	groups  Groups
	ping    Pinger
	circuit func() string
	opts    Options
}

var _ http.Handler = (*Handler)(nil)

// New returns the handler. circuit returns the breaker state.
func New(groups Groups, ping Pinger, circuit func() string, opts Options) (*Handler, error) {
	if groups == nil || ping == nil || circuit == nil {
		return nil, errors.New("system: groups, ping and circuit are required")
	}
	if opts.Group == "" {
		opts.Group = "aggregators"
	}
	return &Handler{groups: groups, ping: ping, circuit: circuit, opts: opts}, nil
}

// ServeHTTP answers GET /api/system.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), Timeout)
	defer cancel()
	rep := Report{Redis: "ok", Durability: "unknown", CircuitState: h.circuit(), Group: h.opts.Group}
	if h.opts.Durability != nil {
		if d := h.opts.Durability(); d != "" {
			rep.Durability = d
		}
	}
	// Plain words only: the errors can carry addresses; they go to the log.
	if err := h.ping.Ping(ctx); err != nil {
		rep.Redis = "failing: " + redisclient.Describe(err)
		h.logFailure(w, r, "redis", err)
	}
	groups, err := h.groups.Groups(ctx)
	if err != nil {
		rep.GroupsError = "consumer groups unreadable: " + redisclient.Describe(err)
		h.logFailure(w, r, "groups", err)
	} else {
		rep.Groups = groups
		rep.Lag, rep.Pending = totals(groups)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(rep)
}

func (h *Handler) logFailure(w http.ResponseWriter, r *http.Request, what string, err error) {
	if h.opts.Logger == nil {
		return
	}
	h.opts.Logger.LogAttrs(r.Context(), slog.LevelWarn, "system report: read failed",
		slog.String("request_id", w.Header().Get("X-Request-Id")), slog.String("check", what), slog.String("err", err.Error()))
}

// totals sums the partitions. A missing group has lag nil, so the total is
// unknown until every partition's group exists.
func totals(groups []Group) (*int64, int64) {
	var lag, pending int64
	known := len(groups) > 0
	for _, g := range groups {
		pending += g.Pending
		if g.Lag == nil {
			known = false
		} else {
			lag += *g.Lag
		}
	}
	if !known {
		return nil, pending
	}
	return &lag, pending
}
