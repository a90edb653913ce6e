// Package trim keeps the stream from growing without bound: it periodically
// removes entries that every consumer group has processed and that are older
// than the retention time (XTRIM MINID). An entry still pending, or not yet
// delivered, in any group is never trimmed, so trimming can never lose a
// metric that was not yet folded into its summary.
package trim

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/internal/telemetry"
)

// Store trims one partition's stream; *store.Store implements it.
type Store interface {
	Trim(ctx context.Context, p int, retention time.Duration) (trimmed int64, minID string, err error)
}

var _ Store = (*store.Store)(nil)

// Options configure a Trimmer; zero values get defaults.
type Options struct {
	// Partition is the stream partition to trim.
	Partition int
	// Retention keeps entries younger than this even when processed
	// (default 0: trim everything processed).
	Retention time.Duration
	// Interval between trims (default 1m).
	Interval time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Metrics (default: a private set).
	Metrics *telemetry.Metrics
}

// Trimmer runs the trim loop.
type Trimmer struct {
	store Store
	opts  Options
}

// New returns a Trimmer; Run starts it.
func New(st Store, opts Options) (*Trimmer, error) {
	if st == nil {
		return nil, errors.New("trim: nil store")
	}
	if opts.Retention < 0 {
		return nil, errors.New("trim: Options.Retention must be >= 0")
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = telemetry.New()
	}
	return &Trimmer{store: st, opts: opts}, nil
}

// Run trims every Interval until ctx ends; failures are logged and retried
// at the next tick.
func (t *Trimmer) Run(ctx context.Context) error {
	tick := time.NewTicker(t.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		n, minID, err := t.Once(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			t.opts.Metrics.Errors.WithLabelValues("trim").Inc()
			t.opts.Logger.Warn("trim failed; retrying next interval", "err", err)
		case n > 0:
			t.opts.Logger.Info("trimmed stream", "entries", n, "minid", minID)
		}
	}
}

// Once trims now and returns how many entries were removed and the MINID
// used ("" when nothing could be trimmed).
func (t *Trimmer) Once(ctx context.Context) (int64, string, error) {
	n, minID, err := t.store.Trim(ctx, t.opts.Partition, t.opts.Retention)
	if err != nil {
		return 0, "", err
	}
	t.opts.Metrics.Trimmed.Add(float64(n))
	return n, minID, nil
}
