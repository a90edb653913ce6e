// Package recovery claims entries that other consumers of the group left
// pending for longer than a minimum idle time (the consumer died, or is
// slow), and applies them. The XACK guard in the apply script makes claiming
// from a consumer that is merely slow harmless: whoever acknowledges first
// folds the entry, the other one skips it.
//
// XAUTOCLAIM does not report delivery counts, so the loop uses XPENDING with
// IDLE (which does) and XCLAIM with the same min idle time (so two replicas
// do not both claim an entry in one round). An entry already delivered
// MaxDeliveries times is dead-lettered instead of being delivered again: it is
// the crash-loop valve.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/internal/apply"
	"github.com/resilientanalytics/ra/services/aggregator/internal/telemetry"
)

// Group is what recovery needs of its consumer group; *store.Group
// implements it.
type Group interface {
	Pending(ctx context.Context, q store.PendingQuery) ([]store.Pending, error)
	Claim(ctx context.Context, consumer string, minIdle time.Duration, ids []string) ([]store.Entry, error)
}

var _ Group = (*store.Group)(nil)

// Applier applies and dead-letters entries; *apply.Applier implements it.
type Applier interface {
	Apply(ctx context.Context, entries []store.Entry) (apply.Result, error)
	DeadLetter(ctx context.Context, dead []apply.Dead) (int, error)
}

var _ Applier = (*apply.Applier)(nil)

// Options configure a Reclaimer; zero values get defaults.
type Options struct {
	// Consumer is the one that claims. Required.
	Consumer string
	// Interval between scans (default 5s).
	Interval time.Duration
	// MinIdle is how long an entry must have been pending untouched before
	// it is claimed (default 30s).
	MinIdle time.Duration
	// MaxDeliveries: an entry delivered this often is dead-lettered instead
	// of claimed for another try (default 10).
	MaxDeliveries int64
	// BatchSize is how many pending entries one XPENDING/XCLAIM round
	// handles (default 256).
	BatchSize int
	// ShutdownTimeout bounds applying entries already claimed when ctx ends
	// (default 10s).
	ShutdownTimeout time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Metrics (default: a private set).
	Metrics *telemetry.Metrics
}

// Reclaimer runs the recovery loop.
type Reclaimer struct {
	group   Group
	applier Applier
	opts    Options
}

// New returns a Reclaimer; Run starts it.
func New(g Group, a Applier, opts Options) (*Reclaimer, error) {
	if g == nil || a == nil || opts.Consumer == "" {
		return nil, errors.New("recovery: a Group, an Applier and Options.Consumer are required")
	}
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.MinIdle <= 0 {
		opts.MinIdle = 30 * time.Second
	}
	if opts.MaxDeliveries <= 0 {
		opts.MaxDeliveries = 10
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 256
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = telemetry.New()
	}
	return &Reclaimer{group: g, applier: a, opts: opts}, nil
}

// Run scans every Interval until ctx ends. Failures are logged and retried
// at the next tick (the interval is the backoff).
func (r *Reclaimer) Run(ctx context.Context) error {
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		res, err := r.Once(ctx)
		if err != nil && ctx.Err() == nil {
			r.opts.Metrics.Errors.WithLabelValues("reclaim").Inc()
			r.opts.Logger.Warn("reclaim failed; retrying next interval", "err", err)
		}
		if res.Claimed > 0 || res.DeadLettered > 0 {
			r.opts.Logger.Info("reclaimed idle entries", "claimed", res.Claimed, "applied", res.Applied,
				"duplicates", res.Duplicates, "dead_lettered", res.DeadLettered)
		}
	}
}

// Result sums up one scan.
type Result struct {
	// Claimed entries were taken over from idle consumers.
	Claimed int
	// Applied, Duplicates and DeadLettered are what happened to them.
	Applied, Duplicates, DeadLettered int
}

// Once claims and applies every entry idle longer than MinIdle, page by page.
func (r *Reclaimer) Once(ctx context.Context) (Result, error) {
	var total Result
	start := "-"
	for ctx.Err() == nil {
		pend, err := r.group.Pending(ctx, store.PendingQuery{
			Start: start, End: "+", Count: r.opts.BatchSize, MinIdle: r.opts.MinIdle,
		})
		if err != nil {
			return total, fmt.Errorf("idle pending: %w", err)
		}
		if len(pend) == 0 {
			return total, nil
		}
		res, err := r.claim(ctx, pend)
		total.Claimed += res.Claimed
		total.Applied += res.Applied
		total.Duplicates += res.Duplicates
		total.DeadLettered += res.DeadLettered
		if err != nil {
			return total, err
		}
		if len(pend) < r.opts.BatchSize {
			return total, nil
		}
		start = "(" + pend[len(pend)-1].ID
	}
	return total, nil
}

// claim takes over one page and applies it. Once XCLAIM has returned, the
// entries are ours: they are applied on a context detached from ctx, so a
// shutdown in between does not leave them pending for another MinIdle.
func (r *Reclaimer) claim(ctx context.Context, pend []store.Pending) (Result, error) {
	ids := make([]string, len(pend))
	count := make(map[string]int64, len(pend))
	for i, p := range pend {
		ids[i] = p.ID
		count[p.ID] = p.Deliveries
	}
	msgs, err := r.group.Claim(ctx, r.opts.Consumer, r.opts.MinIdle, ids)
	if err != nil {
		return Result{}, fmt.Errorf("claim: %w", err)
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.ShutdownTimeout)
	defer cancel()
	res := Result{Claimed: len(msgs)}
	r.opts.Metrics.Reclaimed.Add(float64(len(msgs)))

	var live []store.Entry
	var dead []apply.Dead
	for _, m := range msgs {
		// count is the delivery count before our claim; the claim would be
		// delivery count+1.
		if n := count[m.ID]; n >= r.opts.MaxDeliveries {
			dead = append(dead, apply.Dead{Entry: m, Class: apply.ReasonMaxDeliveries,
				Reason: fmt.Sprintf("delivered %d times without being acknowledged (AGG_MAX_DELIVERIES=%d)", n, r.opts.MaxDeliveries)})
			continue
		}
		live = append(live, m)
	}
	if len(dead) > 0 {
		n, err := r.applier.DeadLetter(actx, dead)
		if err != nil {
			return res, err
		}
		res.DeadLettered += n
	}
	ar, err := r.applier.Apply(actx, live)
	res.Applied, res.Duplicates = ar.Applied, ar.Duplicates
	res.DeadLettered += ar.DeadLettered
	return res, err
}
