// Package consumer is the aggregator's read loop: it joins the consumer
// group, first re-reads its own pending entries (id 0: what a previous run
// under the same name left unacknowledged), then reads new entries (">") in
// batches with a short BLOCK and hands each batch to the applier. Redis
// failures never end the loop: it backs off with jitter and resumes, re-reading
// its pending list first. On shutdown it applies the batch in hand on a
// detached context and leaves the group only when it owns no pending entry.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/internal/apply"
	"github.com/resilientanalytics/ra/services/aggregator/internal/backoff"
	"github.com/resilientanalytics/ra/services/aggregator/internal/telemetry"
)

// ErrGroup wraps a failure to create or join the consumer group.
var ErrGroup = errors.New("consumer group")

// Group is what the read loop needs of its consumer group; *store.Group
// implements it.
type Group interface {
	Ensure(ctx context.Context) error
	Read(ctx context.Context, consumer, id string, count int, block time.Duration) ([]store.Entry, error)
	Pending(ctx context.Context, q store.PendingQuery) ([]store.Pending, error)
	Leave(ctx context.Context, consumer string) (bool, error)
}

var _ Group = (*store.Group)(nil)

// Applier applies one batch; *apply.Applier implements it.
type Applier interface {
	Apply(ctx context.Context, entries []store.Entry) (apply.Result, error)
	DeadLetter(ctx context.Context, dead []apply.Dead) (int, error)
}

var _ Applier = (*apply.Applier)(nil)

// Options configure a Consumer; zero values get defaults.
type Options struct {
	// Group is the consumer group's name, for the logs.
	Group string
	// Name is this consumer's name in the group. Required.
	Name string
	// BatchSize is XREADGROUP COUNT (default 256).
	BatchSize int
	// Block is XREADGROUP BLOCK (default 2s; must be > 0: BLOCK 0 waits
	// forever, and go-redis does not cancel a blocking read on ctx cancel).
	Block time.Duration
	// MaxDeliveries dead-letters an own pending entry delivered more often
	// (default 10).
	MaxDeliveries int64
	// ShutdownTimeout bounds applying the last batch and leaving the group
	// after ctx ends (default 10s).
	ShutdownTimeout time.Duration
	// Backoff spaces retries while Redis is down (default 100ms..5s).
	Backoff backoff.Backoff
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Metrics (default: a private set).
	Metrics *telemetry.Metrics
}

// Consumer reads and applies batches for one group member.
type Consumer struct {
	group   Group
	applier Applier
	opts    Options

	// beat is the Unix nanoseconds of the loop's last sign of life (a read
	// returned, even empty, or a backoff started): health uses it to tell a
	// stuck loop from an idle one.
	beat atomic.Int64
	// lastBatch is the Unix nanoseconds of the last applied batch (0: none).
	lastBatch atomic.Int64
}

// New returns a Consumer; Run starts it.
func New(g Group, a Applier, opts Options) (*Consumer, error) {
	if g == nil || a == nil || opts.Name == "" {
		return nil, errors.New("consumer: a Group, an Applier and Options.Name are required")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 256
	}
	if opts.Block <= 0 {
		opts.Block = 2 * time.Second
	}
	if opts.MaxDeliveries <= 0 {
		opts.MaxDeliveries = 10
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
	c := &Consumer{group: g, applier: a, opts: opts}
	c.touch() // alive from construction: /health must not report a stall before Run starts
	return c, nil
}

// LastBeat is when the loop last showed it is alive.
func (c *Consumer) LastBeat() time.Time { return unixNano(c.beat.Load()) }

// LastBatch is when the last batch was applied (zero: none yet).
func (c *Consumer) LastBatch() time.Time { return unixNano(c.lastBatch.Load()) }

// StaleAfter is how long the loop may go without a beat while healthy: one
// blocking read plus the client's read timeout, or the longest backoff, with
// room to spare.
func (c *Consumer) StaleAfter() time.Duration {
	return 2*(c.opts.Block+c.opts.Backoff.Max) + 5*time.Second
}

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func (c *Consumer) touch() { c.beat.Store(time.Now().UnixNano()) }

// Run reads and applies batches until ctx ends, then finishes the batch in
// hand and returns nil. It returns an error only for a bug, never because
// Redis is unavailable.
//
// While a batch of new entries is applied, the read of the next batch is
// already in flight (one read ahead, never more): Redis serves the read while
// the Go side decodes and the apply script runs right after, instead of
// idling for a round trip per step. The prefetched batch is delivered to this
// consumer, so every exit path waits for it: on shutdown it is applied, after
// a failed apply it is re-read with the rest of the own pending list.
func (c *Consumer) Run(ctx context.Context) error {
	c.touch()
	bo := c.opts.Backoff
	log := c.opts.Logger.With("consumer", c.opts.Name, "group", c.opts.Group)

	needGroup, pending := true, true
	cursor := "0"
	var ahead <-chan readResult // the read in flight, if any (">" only)
	for ctx.Err() == nil || ahead != nil {
		if needGroup {
			// The group is created at id 0 with MKSTREAM, so entries written
			// before any aggregator ran are consumed.
			if err := c.group.Ensure(ctx); err != nil {
				err = fmt.Errorf("%w: %w", ErrGroup, err)
				c.fail(ctx, log, &bo, "create_group", err)
				continue
			}
			needGroup = false
		}
		var msgs []store.Entry
		var err error
		if pending {
			msgs, err = c.read(ctx, cursor)
		} else {
			if ahead == nil {
				ahead = c.readAsync(ctx, ">")
			}
			r := <-ahead
			ahead = nil
			msgs, err = r.msgs, r.err
			if err == nil && len(msgs) > 0 && ctx.Err() == nil {
				ahead = c.readAsync(ctx, ">")
			}
		}
		c.touch()
		if err != nil {
			if errors.Is(err, store.ErrNoGroup) {
				// Redis lost the group (restart without persistence, or
				// someone deleted it): recreate it and start over.
				needGroup = true
			}
			c.fail(ctx, log, &bo, "read", err)
			pending, cursor = true, "0"
			continue
		}
		if pending {
			if len(msgs) == 0 {
				pending = false // own pending list drained: read new entries
				continue
			}
			cursor = msgs[len(msgs)-1].ID
		}
		if len(msgs) == 0 {
			bo.Reset()
			continue
		}
		if err := c.applyBatch(ctx, log, msgs, pending); err != nil {
			if ahead != nil {
				<-ahead // delivered to us: the pending re-read below picks it up
				ahead = nil
			}
			c.fail(ctx, log, &bo, "apply", err)
			pending, cursor = true, "0"
			continue
		}
		bo.Reset()
	}
	return nil
}

type readResult struct {
	msgs []store.Entry
	err  error
}

// readAsync starts one read; its goroutine ends when the read does (bounded
// by the read's own timeout), and Run always receives its result.
func (c *Consumer) readAsync(ctx context.Context, id string) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		msgs, err := c.read(ctx, id)
		ch <- readResult{msgs, err}
	}()
	return ch
}

// read runs one XREADGROUP on a context that ends only by its own timeout:
// a read cut off by cancellation could have delivered entries whose reply we
// never see; letting it finish means every delivered batch is in our hands
// and gets applied (go-redis would not interrupt the BLOCK anyway).
func (c *Consumer) read(ctx context.Context, id string) ([]store.Entry, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Block+5*time.Second)
	defer cancel()
	return c.group.Read(rctx, c.opts.Name, id, c.opts.BatchSize, c.opts.Block)
}

// applyBatch applies msgs. A batch read after ctx ended is applied on a
// detached context with the shutdown timeout: it is delivered to us and
// would otherwise wait for a claim. Own pending entries (re-read from id 0)
// are first checked against MaxDeliveries.
func (c *Consumer) applyBatch(ctx context.Context, log *slog.Logger, msgs []store.Entry, own bool) error {
	actx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(context.WithoutCancel(ctx), c.opts.ShutdownTimeout)
		defer cancel()
	}
	if own {
		var err error
		if msgs, err = c.valve(actx, msgs); err != nil {
			return err
		}
	}
	res, err := c.applier.Apply(actx, msgs)
	if err != nil {
		return err
	}
	c.lastBatch.Store(time.Now().UnixNano())
	log.Debug("batch applied", "entries", len(msgs), "applied", res.Applied, "duplicates", res.Duplicates, "dead_lettered", res.DeadLettered)
	if own {
		log.Info("re-applied own pending entries", "entries", len(msgs), "applied", res.Applied, "duplicates", res.Duplicates)
	}
	return nil
}

// valve dead-letters own pending entries whose delivery count passed
// MaxDeliveries (each re-read from id 0 raises it): an entry that crashes
// the process every time must not crash it forever.
func (c *Consumer) valve(ctx context.Context, msgs []store.Entry) ([]store.Entry, error) {
	info, err := c.group.Pending(ctx, store.PendingQuery{
		Consumer: c.opts.Name, Start: msgs[0].ID, End: msgs[len(msgs)-1].ID, Count: len(msgs),
	})
	if err != nil {
		return nil, fmt.Errorf("own pending: %w", err)
	}
	count := make(map[string]int64, len(info))
	for _, p := range info {
		count[p.ID] = p.Deliveries
	}
	keep := msgs[:0:0]
	var dead []apply.Dead
	for _, m := range msgs {
		if n := count[m.ID]; n > c.opts.MaxDeliveries {
			dead = append(dead, apply.Dead{Entry: m, Class: apply.ReasonMaxDeliveries,
				Reason: fmt.Sprintf("delivered %d times, more than AGG_MAX_DELIVERIES=%d", n, c.opts.MaxDeliveries)})
			continue
		}
		keep = append(keep, m)
	}
	if _, err := c.applier.DeadLetter(ctx, dead); err != nil {
		return nil, err
	}
	return keep, nil
}

func (c *Consumer) fail(ctx context.Context, log *slog.Logger, bo *backoff.Backoff, op string, err error) {
	c.opts.Metrics.Errors.WithLabelValues(op).Inc()
	if ctx.Err() != nil {
		return
	}
	d := bo.Next()
	log.Warn("redis operation failed; backing off", "op", op, "err", err, "retry_in", d)
	t := time.NewTimer(d)
	defer t.Stop()
	c.touch()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Leave deletes this consumer from the group if, and only if, it owns no
// pending entry; check and delete run in one script, since XGROUP
// DELCONSUMER would silently drop the pending entries it still owns. It
// reports whether the consumer was deleted. Call it after Run and the
// recovery loop (which claims entries for this consumer) have returned.
func (c *Consumer) Leave(ctx context.Context) (bool, error) {
	return c.group.Leave(ctx, c.opts.Name)
}
