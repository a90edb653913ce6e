// Package apply folds batches of stream entries into the per-type summary
// hashes, the per-type per-minute buckets and the known-types set, exactly
// once per entry: one call of the store's apply script acknowledges each
// entry and folds only those its own XACK acknowledged. Entries that cannot
// be applied (they do not decode, or were delivered too often) go to the
// dead-letter stream through the store, acknowledged in the same script,
// so nothing is dropped silently and nothing is both folded and
// dead-lettered.
package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/internal/telemetry"
)

// Store is what an Applier needs of one consumer group on one partition;
// *store.Group implements it.
type Store interface {
	Apply(ctx context.Context, entries []store.Decoded, opts store.ApplyOptions) (store.ApplyResult, error)
	DeadLetter(ctx context.Context, consumer string, maxLen int64, dead []store.Dead) (int, error)
}

var _ Store = (*store.Group)(nil)

// Reasons a Dead entry carries in metrics (the dead letter itself records
// the full message).
const (
	ReasonDecode        = "decode"
	ReasonMaxDeliveries = "max_deliveries"
	// ReasonCorrupt: the entry's summary hash or bucket minute cannot be
	// read, so the entry cannot be folded into it (the other types of its
	// batch are applied).
	ReasonCorrupt = store.RejectCorrupt
	// ReasonNonFinite: folding the entry would make a sum overflow (only
	// an entry written past the api's INGEST_MAX_ABS_VALUE can).
	ReasonNonFinite = store.RejectNonFinite
)

// ErrScript wraps every failed script call; the entries stay pending and are
// delivered again.
var ErrScript = errors.New("apply script failed")

// Options configure an Applier; zero values get defaults.
type Options struct {
	// Consumer is recorded with each dead letter.
	Consumer string
	// DeadLetterMax caps the dead-letter stream (default 100,000).
	DeadLetterMax int64
	// Logger receives one line per dead letter (default slog.Default()).
	Logger *slog.Logger
	// Metrics receives counters and histograms (default: a private set).
	Metrics *telemetry.Metrics
	// BucketRetention is how long per-minute buckets are kept
	// (BUCKET_RETENTION, default DefaultBucketRetention). A metric whose
	// event time is more than this before now, or more than this after
	// now, still counts in the all-time summary but is not bucketed: an
	// older minute could no longer be queried, and a far-future one would
	// pin a hash in Redis for as long as its clock is ahead.
	BucketRetention time.Duration
	// Now is the clock that decides which metrics are within the retention
	// (default time.Now). It is the aggregator's clock, not Redis TIME: the
	// decision picks the bucket keys, and every key a script touches must be
	// named in KEYS before it runs. Hosts' clocks only move the cut-off by
	// their skew, at the edge of a 7-day retention.
	Now func() time.Time
}

// DefaultBucketRetention is the default BUCKET_RETENTION.
const DefaultBucketRetention = 7 * 24 * time.Hour

// Applier applies batches for one group on one partition. It is safe for
// concurrent use.
type Applier struct {
	store Store
	opts  Options
}

// New returns an Applier writing through st.
func New(st Store, opts Options) (*Applier, error) {
	if st == nil {
		return nil, errors.New("apply: nil store")
	}
	if opts.DeadLetterMax <= 0 {
		opts.DeadLetterMax = 100_000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = telemetry.New()
	}
	if opts.BucketRetention == 0 {
		opts.BucketRetention = DefaultBucketRetention
	}
	if opts.BucketRetention < time.Second {
		return nil, fmt.Errorf("apply: Options.BucketRetention must be >= 1s, got %s", opts.BucketRetention)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Applier{store: st, opts: opts}, nil
}

// Dead is one entry to dead-letter and why.
type Dead struct {
	Entry store.Entry
	// Reason is a one-line explanation stored with the dead letter.
	Reason string
	// Class is one of the Reason constants (a metrics label).
	Class string
}

// Result says what happened to a batch.
type Result struct {
	// Applied entries were folded into their summary (and, within the
	// retention, their bucket) by this call.
	Applied int
	// Duplicates were already acknowledged (applied by someone else).
	Duplicates int
	// DeadLettered entries were moved to the dead-letter stream.
	DeadLettered int
}

// Apply decodes entries, folds the valid ones with one script call and
// dead-letters the rest: entries that do not decode, and entries the
// script would not fold (a corrupt summary or bucket minute, a sum that
// would overflow), so one bad type never stops the others. On error
// nothing of the failed script is written; the entries stay pending and
// will be delivered again (the XACK guard makes repeating harmless).
func (a *Applier) Apply(ctx context.Context, entries []store.Entry) (Result, error) {
	if len(entries) == 0 {
		return Result{}, nil
	}
	start := time.Now()
	good := make([]store.Decoded, 0, len(entries))
	src := make([]store.Entry, 0, len(entries)) // good[i] decoded from src[i]
	var dead []Dead
	for _, e := range entries {
		met, err := store.DecodeEntry(e.Values)
		if err != nil {
			dead = append(dead, Dead{Entry: e, Reason: err.Error(), Class: ReasonDecode})
			continue
		}
		good = append(good, store.Decoded{ID: e.ID, Metric: met})
		src = append(src, e)
	}
	var res Result
	if len(good) > 0 {
		out, err := a.store.Apply(ctx, good, store.ApplyOptions{BucketRetention: a.opts.BucketRetention, Now: a.opts.Now()})
		if err != nil {
			a.opts.Metrics.Errors.WithLabelValues("apply").Inc()
			return res, fmt.Errorf("%w: %w", ErrScript, err)
		}
		res.Applied, res.Duplicates = out.Applied, out.Duplicates
		a.opts.Metrics.Processed.Add(float64(out.Applied))
		a.opts.Metrics.Duplicates.Add(float64(out.Duplicates))
		for _, r := range out.Rejected {
			dead = append(dead, Dead{Entry: src[r.Index], Reason: r.Reason, Class: r.Class})
		}
	}
	if len(dead) > 0 {
		n, err := a.DeadLetter(ctx, dead)
		if err != nil {
			return res, err
		}
		res.DeadLettered = n
	}
	a.opts.Metrics.BatchSize.Observe(float64(len(entries)))
	a.opts.Metrics.ApplyLatency.Observe(time.Since(start).Seconds())
	return res, nil
}

// DeadLetter moves entries to the dead-letter stream with their reason and
// original fields, acknowledging each in the same script. It returns how
// many were moved (entries already acknowledged elsewhere are skipped).
func (a *Applier) DeadLetter(ctx context.Context, dead []Dead) (int, error) {
	if len(dead) == 0 {
		return 0, nil
	}
	sd := make([]store.Dead, len(dead))
	for i, d := range dead {
		sd[i] = store.Dead{Entry: d.Entry, Reason: d.Reason}
	}
	n, err := a.store.DeadLetter(ctx, a.opts.Consumer, a.opts.DeadLetterMax, sd)
	if err != nil {
		a.opts.Metrics.Errors.WithLabelValues("dead_letter").Inc()
		return 0, fmt.Errorf("%w: %w", ErrScript, err)
	}
	for _, d := range dead {
		a.opts.Logger.Warn("entry dead-lettered", "id", d.Entry.ID, "reason", d.Reason, "class", d.Class)
	}
	// Count by class; when some were skipped as already handled the split is
	// approximate, the total is exact.
	left := int(n)
	for _, d := range dead {
		if left == 0 {
			break
		}
		a.opts.Metrics.DeadLettered.WithLabelValues(d.Class).Inc()
		left--
	}
	return int(n), nil
}
