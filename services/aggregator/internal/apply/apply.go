// Package apply folds batches of stream entries into the per-type summary
// hashes, the per-type per-minute buckets (pkg/bucket) and the known-types
// set, exactly once per entry: one call of apply.lua acknowledges each entry
// and folds only those its own XACK acknowledged. Entries that cannot
// be applied (they do not decode, or were delivered too often) go to the
// dead-letter stream through deadletter.lua, acknowledged in the same script,
// so nothing is dropped silently and nothing is both folded and
// dead-lettered.
package apply

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/bucket"
	"github.com/resilientanalytics/ra/pkg/keys"
	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/summary"
	"github.com/resilientanalytics/ra/services/aggregator/internal/telemetry"
)

var (
	//go:embed apply.lua
	applySrc string
	//go:embed deadletter.lua
	deadLetterSrc string
)

// maxExactTS is 2^53: timestamps above it lose precision as Lua numbers, so
// such entries are dead-lettered instead of being folded inexactly.
const maxExactTS = 1 << 53

// Reasons a Dead entry carries in metrics (the dead letter itself records
// the full message).
const (
	ReasonDecode        = "decode"
	ReasonMaxDeliveries = "max_deliveries"
)

// ErrScript wraps every failed script call; the entries stay pending and are
// delivered again.
var ErrScript = errors.New("apply script failed")

// Options configure an Applier; zero values get defaults.
type Options struct {
	// Group is the consumer group whose pending entries are acknowledged.
	// Required.
	Group string
	// Consumer is recorded with each dead letter.
	Consumer string
	// Partition selects the keys (0 until partitions exist).
	Partition int
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
	rdb        redis.Scripter
	keys       keys.Keys
	stream     string
	dead       string
	opts       Options
	apply      *redis.Script
	deadLetter *redis.Script
}

// New returns an Applier writing keys of family k.
func New(rdb redis.Scripter, k keys.Keys, opts Options) (*Applier, error) {
	if opts.Group == "" {
		return nil, errors.New("apply: Options.Group is required")
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
	return &Applier{
		rdb:        rdb,
		keys:       k,
		stream:     k.Stream(opts.Partition),
		dead:       k.Dead(opts.Partition),
		opts:       opts,
		apply:      redis.NewScript(applySrc),
		deadLetter: redis.NewScript(deadLetterSrc),
	}, nil
}

// Stream is the stream key the applier acknowledges on.
func (a *Applier) Stream() string { return a.stream }

// Dead is one entry to dead-letter and why.
type Dead struct {
	Msg redis.XMessage
	// Reason is a one-line explanation stored with the dead letter.
	Reason string
	// Class is ReasonDecode or ReasonMaxDeliveries (a metrics label).
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

// Apply decodes msgs, folds the valid ones with one script call and
// dead-letters the rest. On error nothing of the failed script is written;
// the entries stay pending and will be delivered again (the XACK guard makes
// repeating harmless).
func (a *Applier) Apply(ctx context.Context, msgs []redis.XMessage) (Result, error) {
	if len(msgs) == 0 {
		return Result{}, nil
	}
	start := time.Now()
	good := make([]metric.Metric, 0, len(msgs))
	goodIDs := make([]string, 0, len(msgs))
	var dead []Dead
	for _, m := range msgs {
		met, err := decode(m)
		if err != nil {
			dead = append(dead, Dead{Msg: m, Reason: err.Error(), Class: ReasonDecode})
			continue
		}
		good = append(good, met)
		goodIDs = append(goodIDs, m.ID)
	}
	var res Result
	if len(good) > 0 {
		applied, dups, err := a.run(ctx, goodIDs, good)
		if err != nil {
			a.opts.Metrics.Errors.WithLabelValues("apply").Inc()
			return res, err
		}
		res.Applied, res.Duplicates = applied, dups
		a.opts.Metrics.Processed.Add(float64(applied))
		a.opts.Metrics.Duplicates.Add(float64(dups))
	}
	if len(dead) > 0 {
		n, err := a.DeadLetter(ctx, dead)
		if err != nil {
			return res, err
		}
		res.DeadLettered = n
	}
	a.opts.Metrics.BatchSize.Observe(float64(len(msgs)))
	a.opts.Metrics.ApplyLatency.Observe(time.Since(start).Seconds())
	return res, nil
}

func decode(m redis.XMessage) (metric.Metric, error) {
	if m.Values == nil {
		// XREADGROUP/XCLAIM return a pending entry that was deleted from the
		// stream with no fields.
		return metric.Metric{}, fmt.Errorf("%w: entry no longer in the stream (deleted)", metric.ErrBadEntry)
	}
	met, err := metric.FromFields(m.Values)
	if err != nil {
		return metric.Metric{}, err
	}
	if us := met.Micros(); us > maxExactTS {
		return metric.Metric{}, fmt.Errorf("%w: ts %d beyond 2^53 microseconds", metric.ErrBadEntry, us)
	}
	return met, nil
}

// run calls apply.lua for decoded metrics. Script.Run sends EVALSHA and
// falls back to EVAL on NOSCRIPT, so an empty script cache after a Redis
// restart costs one extra round trip, not an error.
func (a *Applier) run(ctx context.Context, ids []string, ms []metric.Metric) (applied, dups int, err error) {
	type bucketID struct {
		typ  string
		hour int64
	}
	sumIdx := make(map[string]int, 8)
	bucketIdx := make(map[bucketID]int, 8)
	var sumKeys, typeNames, bucketKeys []string
	var hours []any
	// Per entry: summary ordinal (1-based among summaries) and bucket
	// ordinal (0 = not bucketed); turned into KEYS indexes below once the
	// number of summaries is known.
	sOrd := make([]int, len(ms))
	bOrd := make([]int, len(ms))
	now := a.opts.Now().UnixMicro()
	ret := a.opts.BucketRetention.Microseconds()
	oldest, newest := now-ret, now+ret
	for i, m := range ms {
		s, ok := sumIdx[m.Type]
		if !ok {
			sumKeys = append(sumKeys, a.keys.Summary(a.opts.Partition, m.Type))
			typeNames = append(typeNames, m.Type)
			s = len(sumKeys)
			sumIdx[m.Type] = s
		}
		sOrd[i] = s
		us := m.Micros()
		if us < oldest || us >= newest {
			continue
		}
		id := bucketID{m.Type, bucket.Hour(us)}
		b, ok := bucketIdx[id]
		if !ok {
			bucketKeys = append(bucketKeys, a.keys.Bucket(a.opts.Partition, id.typ, id.hour))
			hours = append(hours, id.hour)
			b = len(bucketKeys)
			bucketIdx[id] = b
		}
		bOrd[i] = b
	}

	ks := make([]string, 0, 2+len(sumKeys)+len(bucketKeys))
	ks = append(ks, a.stream, a.keys.Types(a.opts.Partition))
	ks = append(ks, sumKeys...)
	ks = append(ks, bucketKeys...)
	firstBucket := 2 + len(sumKeys) // KEYS index of bucket ordinal 1, minus 1
	args := make([]any, 0, 10+len(typeNames)+len(hours)+5*len(ms))
	args = append(args, a.opts.Group,
		summary.FieldCount, summary.FieldSum, summary.FieldMin, summary.FieldMax, summary.FieldFirstTS, summary.FieldLastTS,
		int64(a.opts.BucketRetention/time.Second), len(bucketKeys), len(ms))
	for _, t := range typeNames {
		args = append(args, t)
	}
	args = append(args, hours...)
	for i, m := range ms {
		b := 0
		if bOrd[i] > 0 {
			b = firstBucket + bOrd[i]
		}
		// Lua KEYS are 1-based: stream 1, types 2, summaries from 3.
		args = append(args, ids[i], 2+sOrd[i], b, metric.FormatValue(m.Value), m.Micros())
	}
	out, err := a.apply.Run(ctx, a.rdb, ks, args...).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %d entries: %w", ErrScript, len(ms), err)
	}
	if len(out) != 2 {
		return 0, 0, fmt.Errorf("%w: unexpected reply %v", ErrScript, out)
	}
	return int(out[0]), int(out[1]), nil
}

// DeadLetter moves entries to the dead-letter stream with their reason and
// original fields, acknowledging each in the same script. It returns how
// many were moved (entries already acknowledged elsewhere are skipped).
func (a *Applier) DeadLetter(ctx context.Context, dead []Dead) (int, error) {
	if len(dead) == 0 {
		return 0, nil
	}
	args := []any{a.opts.Group, a.opts.DeadLetterMax, a.opts.Consumer, len(dead)}
	for _, d := range dead {
		names := make([]string, 0, len(d.Msg.Values))
		for k := range d.Msg.Values {
			names = append(names, k)
		}
		sort.Strings(names) // deterministic dead letters
		args = append(args, d.Msg.ID, d.Reason, 2*len(names))
		for _, k := range names {
			args = append(args, k, fmt.Sprint(d.Msg.Values[k]))
		}
	}
	n, err := a.deadLetter.Run(ctx, a.rdb, []string{a.stream, a.dead}, args...).Int64()
	if err != nil {
		a.opts.Metrics.Errors.WithLabelValues("dead_letter").Inc()
		return 0, fmt.Errorf("%w: dead-letter %d entries: %w", ErrScript, len(dead), err)
	}
	for _, d := range dead {
		a.opts.Logger.Warn("entry dead-lettered", "id", d.Msg.ID, "reason", d.Reason, "class", d.Class, "dead_stream", a.dead)
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
