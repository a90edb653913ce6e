package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
)

// ErrNoGroup means Redis does not know the consumer group (it restarted
// without persistence, or someone deleted the group): create it again.
var ErrNoGroup = errors.New("consumer group does not exist")

// Group is one consumer group on one partition's stream: everything the
// aggregator does with Redis. It is safe for concurrent use.
type Group struct {
	s      *Store
	p      int
	name   string
	stream string
	dead   string
	types  string
	// admitted is the partition's admitted-types set (MAX_TYPES).
	admitted string
}

// Group returns the handle of consumer group name on partition p.
func (s *Store) Group(p int, name string) *Group {
	return &Group{s: s, p: p, name: name, stream: s.keys.Stream(p), dead: s.keys.Dead(p), types: s.keys.Types(p), admitted: s.keys.AdmittedTypes(p)}
}

// Stream is the key of the group's stream, e.g. "{metrics:0}:stream".
func (g *Group) Stream() string { return g.stream }

// DeadStream is the key of the partition's dead-letter stream.
func (g *Group) DeadStream() string { return g.dead }

// Partition is the partition number.
func (g *Group) Partition() int { return g.p }

// Ensure creates the group at id 0 with MKSTREAM, so entries written
// before any aggregator ran are consumed; an existing group is kept as is.
func (g *Group) Ensure(ctx context.Context) error {
	err := g.s.rdb.XGroupCreateMkStream(ctx, g.stream, g.name, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return fmt.Errorf("create group %s on %s: %w", g.name, g.stream, err)
	}
	return nil
}

// Read is one XREADGROUP of at most count entries for consumer from id:
// ">" for new entries (waiting up to block when it is > 0), or an id for
// the consumer's own pending entries after it (never blocks). BLOCK 0
// would wait forever, so block <= 0 does not block at all. A read that
// found nothing returns no entries and no error; an unknown group wraps
// ErrNoGroup.
func (g *Group) Read(ctx context.Context, consumer, id string, count int, block time.Duration) ([]Entry, error) {
	if id != ">" || block <= 0 {
		block = -1 // omit BLOCK
	}
	res, err := g.s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: g.name, Consumer: consumer,
		Streams: []string{g.stream, id},
		Count:   int64(count), Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil // BLOCK ran out: nothing new
	}
	if err != nil {
		return nil, g.wrap("xreadgroup "+id, err)
	}
	if len(res) == 0 {
		return nil, nil
	}
	return entries(res[0].Messages), nil
}

func (g *Group) wrap(op string, err error) error {
	if redis.HasErrorPrefix(err, "NOGROUP") {
		return fmt.Errorf("%s: %w: %w", op, ErrNoGroup, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func entries(msgs []redis.XMessage) []Entry {
	out := make([]Entry, len(msgs))
	for i, m := range msgs {
		out[i] = Entry{ID: m.ID, Values: m.Values}
	}
	return out
}

// Pending is one pending entry and how often it was delivered.
type Pending struct {
	ID         string
	Deliveries int64
}

// PendingQuery selects pending entries (XPENDING with IDLE).
type PendingQuery struct {
	// Consumer limits the list to one consumer ("" = all).
	Consumer string
	// Start and End bound the ids ("-" and "+" for all; "(id" excludes).
	Start, End string
	// Count is the most entries returned.
	Count int
	// MinIdle keeps only entries idle at least this long (0 = all).
	MinIdle time.Duration
}

// Pending lists pending entries with their delivery counts: XAUTOCLAIM does
// not report them, XPENDING does.
func (g *Group) Pending(ctx context.Context, q PendingQuery) ([]Pending, error) {
	args := &redis.XPendingExtArgs{
		Stream: g.stream, Group: g.name, Consumer: q.Consumer,
		Start: q.Start, End: q.End, Count: int64(q.Count), Idle: q.MinIdle,
	}
	res, err := g.s.rdb.XPendingExt(ctx, args).Result()
	if err != nil {
		return nil, g.wrap("xpending", err)
	}
	out := make([]Pending, len(res))
	for i, p := range res {
		out[i] = Pending{ID: p.ID, Deliveries: p.RetryCount}
	}
	return out, nil
}

// Claim takes over ids for consumer, each only if it is still idle at
// least minIdle (so two replicas do not both claim an entry in one round).
func (g *Group) Claim(ctx context.Context, consumer string, minIdle time.Duration, ids []string) ([]Entry, error) {
	msgs, err := g.s.rdb.XClaim(ctx, &redis.XClaimArgs{
		Stream: g.stream, Group: g.name, Consumer: consumer, MinIdle: minIdle, Messages: ids,
	}).Result()
	if err != nil {
		return nil, g.wrap("xclaim", err)
	}
	return entries(msgs), nil
}

// Leave deletes consumer from the group if, and only if, it owns no
// pending entry; check and delete run in one script (leave.lua), since
// XGROUP DELCONSUMER would silently drop the pending entries it still
// owns. It reports whether the consumer was deleted.
func (g *Group) Leave(ctx context.Context, consumer string) (bool, error) {
	n, err := g.s.leaveScript.Run(ctx, g.s.rdb, []string{g.stream}, g.name, consumer).Int64()
	if err != nil {
		return false, g.wrap("leave group", err)
	}
	return n == 1, nil
}

// GroupInfo is the group's XINFO GROUPS row, with the lag counted.
type GroupInfo struct {
	// Consumers is the number of consumers in the group.
	Consumers int64
	// Pending is the number of entries delivered but not acknowledged.
	Pending int64
	// Lag is the number of entries not yet delivered to the group: counted
	// (lag.lua) up to LagCountCap, past it XINFO's figure, or -1 when Redis
	// cannot tell either.
	Lag int64
	// LastDelivered is the id of the last entry delivered to the group.
	LastDelivered string
}

// LagCountCap is how many undelivered entries Info and GroupStats count one
// by one. Up to it the lag is exact, whatever XINFO says; past it the
// group is far behind and XINFO's estimate is shown.
const LagCountCap = 1000

// Info returns the group's XINFO GROUPS row, with the lag counted rather
// than taken from XINFO: Redis 7.0 does not persist a group's entries-read
// counter, so after a restart from the AOF its lag stays null or wrong
// even once everything is delivered and acknowledged.
func (g *Group) Info(ctx context.Context) (GroupInfo, error) {
	groups, err := g.s.rdb.XInfoGroups(ctx, g.stream).Result()
	if err != nil && redis.HasErrorPrefix(err, "no such key") {
		// No stream, so no group yet either.
		return GroupInfo{}, fmt.Errorf("%w yet: no stream %s", ErrNoGroup, g.stream)
	}
	if err != nil {
		return GroupInfo{}, fmt.Errorf("xinfo groups: %w", err)
	}
	for _, x := range groups {
		if x.Name == g.name {
			lag, err := g.s.lag(ctx, g.stream, x.LastDeliveredID, x.Lag)
			if err != nil {
				return GroupInfo{}, err
			}
			return GroupInfo{Consumers: x.Consumers, Pending: x.Pending, Lag: lag, LastDelivered: x.LastDeliveredID}, nil
		}
	}
	return GroupInfo{}, fmt.Errorf("%w yet: %q on %s", ErrNoGroup, g.name, g.stream)
}

// lag counts the entries of stream after lastDelivered (lag.lua) up to
// LagCountCap. At the cap the count is only a lower bound: reported is
// XINFO's own lag (xinfoLag, -1 for null) when it is at least that, else -1.
func (s *Store) lag(ctx context.Context, stream, lastDelivered string, xinfoLag int64) (int64, error) {
	n, err := s.lagScript.Run(ctx, s.rdb, []string{stream}, lastDelivered, LagCountCap).Int64()
	if err != nil {
		return 0, fmt.Errorf("count lag of %s: %w", stream, err)
	}
	switch {
	case n < LagCountCap:
		return n, nil
	case xinfoLag >= n:
		return xinfoLag, nil
	}
	return -1, nil
}

// Decoded is one decoded entry to apply.
type Decoded struct {
	ID     string
	Metric metric.Metric
}

// ApplyOptions say how a batch is bucketed.
type ApplyOptions struct {
	// BucketRetention is how long per-minute buckets are kept (> 0). A
	// metric whose event time is more than this before Now, or more than
	// this after Now, still counts in the all-time summary but is not
	// bucketed.
	BucketRetention time.Duration
	// Now decides which metrics are within the retention. It is the
	// caller's clock, not Redis TIME: the decision picks the bucket keys,
	// and every key a script touches must be named in KEYS before it runs.
	Now time.Time
}

// ApplyResult is what one apply.lua call did with a batch.
type ApplyResult struct {
	// Applied entries were folded by this call.
	Applied int
	// Duplicates were already acknowledged (folded by someone else).
	Duplicates int
	// Rejected entries were neither folded nor acknowledged: they stay
	// pending, for the caller to dead-letter.
	Rejected []Rejected
}

// Rejected is one entry the apply script would not fold.
type Rejected struct {
	// Index is the entry's position in the batch passed to Apply.
	Index int
	// Class is RejectCorrupt or RejectNonFinite.
	Class string
	// Reason says which hash or sum, for the dead letter.
	Reason string
}

// The classes of Rejected.
const (
	// RejectCorrupt: the entry's summary hash or its bucket minute does
	// not hold finite numbers; folding into it would write garbage.
	RejectCorrupt = "corrupt"
	// RejectNonFinite: folding the entry would make its summary's or its
	// minute's sum overflow to ±Inf.
	RejectNonFinite = "non_finite"
)

// Apply acknowledges the batch's entries and folds every entry that THIS
// call acknowledged into its type's summary, its per-minute bucket (within
// the retention), the types set and the admitted-types set: one apply.lua
// call. A redelivered or concurrently claimed entry is folded exactly once.
// An entry whose summary or bucket minute is corrupt, or whose fold would
// make a sum non-finite, is reported in Rejected and left pending; the
// rest of the batch is applied. On error nothing was written; the entries
// stay pending.
func (g *Group) Apply(ctx context.Context, folds []Decoded, opts ApplyOptions) (ApplyResult, error) {
	if len(folds) == 0 {
		return ApplyResult{}, nil
	}
	type bucketID struct {
		typ  string
		hour int64
	}
	k := g.s.keys
	sumIdx := make(map[string]int, 8)
	bucketIdx := make(map[bucketID]int, 8)
	var sumKeys, typeNames, bucketKeys []string
	var hours []any
	// Per entry: summary ordinal (1-based among summaries) and bucket
	// ordinal (0 = not bucketed); turned into KEYS indexes below once the
	// number of summaries is known.
	sOrd := make([]int, len(folds))
	bOrd := make([]int, len(folds))
	now := opts.Now.UnixMicro()
	ret := opts.BucketRetention.Microseconds()
	oldest, newest := now-ret, now+ret
	for i, f := range folds {
		m := f.Metric
		s, ok := sumIdx[m.Type]
		if !ok {
			sumKeys = append(sumKeys, k.Summary(g.p, m.Type))
			typeNames = append(typeNames, m.Type)
			s = len(sumKeys)
			sumIdx[m.Type] = s
		}
		sOrd[i] = s
		us := m.Micros()
		if us < oldest || us >= newest {
			continue
		}
		id := bucketID{m.Type, Hour(us)}
		b, ok := bucketIdx[id]
		if !ok {
			bucketKeys = append(bucketKeys, k.Bucket(g.p, id.typ, id.hour))
			hours = append(hours, id.hour)
			b = len(bucketKeys)
			bucketIdx[id] = b
		}
		bOrd[i] = b
	}
	ks := make([]string, 0, 3+len(sumKeys)+len(bucketKeys))
	ks = append(ks, g.stream, g.types, g.admitted)
	ks = append(ks, sumKeys...)
	ks = append(ks, bucketKeys...)
	firstBucket := 3 + len(sumKeys) // KEYS index of bucket ordinal 1, minus 1
	args := make([]any, 0, 10+len(typeNames)+len(hours)+5*len(folds))
	args = append(args, g.name,
		SummaryCount, SummarySum, SummaryMin, SummaryMax, SummaryFirstTS, SummaryLastTS,
		int64(opts.BucketRetention/time.Second), len(bucketKeys), len(folds))
	for _, t := range typeNames {
		args = append(args, t)
	}
	args = append(args, hours...)
	for i, f := range folds {
		b := 0
		if bOrd[i] > 0 {
			b = firstBucket + bOrd[i]
		}
		// Lua KEYS are 1-based: stream 1, types 2, admitted 3, summaries from 4.
		args = append(args, f.ID, 3+sOrd[i], b, metric.FormatValue(f.Metric.Value), f.Metric.Micros())
	}
	out, err := g.s.applyScript.Run(ctx, g.s.rdb, ks, args...).Slice()
	if err != nil {
		return ApplyResult{}, g.wrap(fmt.Sprintf("apply %d entries", len(folds)), err)
	}
	return parseApplyReply(out, len(folds))
}

// parseApplyReply decodes {applied, duplicates, {index, class, reason}...}.
func parseApplyReply(out []any, n int) (ApplyResult, error) {
	bad := func() (ApplyResult, error) {
		return ApplyResult{}, fmt.Errorf("apply %d entries: unexpected reply %v", n, out)
	}
	if len(out) != 3 {
		return bad()
	}
	applied, ok1 := out[0].(int64)
	dups, ok2 := out[1].(int64)
	rej, ok3 := out[2].([]any)
	if !ok1 || !ok2 || !ok3 || len(rej)%3 != 0 {
		return bad()
	}
	res := ApplyResult{Applied: int(applied), Duplicates: int(dups)}
	for j := 0; j < len(rej); j += 3 {
		i, ok1 := rej[j].(int64)
		class, ok2 := rej[j+1].(string)
		reason, ok3 := rej[j+2].(string)
		if !ok1 || !ok2 || !ok3 || i < 1 || int(i) > n {
			return bad()
		}
		res.Rejected = append(res.Rejected, Rejected{Index: int(i) - 1, Class: class, Reason: reason})
	}
	return res, nil
}

// Dead is one entry to dead-letter and why.
type Dead struct {
	Entry Entry
	// Reason is a one-line explanation stored with the dead letter.
	Reason string
}

// DeadLetter moves entries to the partition's dead-letter stream (capped
// at about maxLen entries, MAXLEN ~) with their reason, consumer and
// original fields, acknowledging each in the same script (deadletter.lua).
// It returns how many were moved: entries already acknowledged elsewhere
// are skipped, so an entry is folded or dead-lettered, never both.
func (g *Group) DeadLetter(ctx context.Context, consumer string, maxLen int64, dead []Dead) (int, error) {
	if len(dead) == 0 {
		return 0, nil
	}
	args := []any{g.name, maxLen, consumer, len(dead)}
	for _, d := range dead {
		names := make([]string, 0, len(d.Entry.Values))
		for k := range d.Entry.Values {
			names = append(names, k)
		}
		sort.Strings(names) // deterministic dead letters
		args = append(args, d.Entry.ID, d.Reason, 2*len(names))
		for _, k := range names {
			args = append(args, k, fmt.Sprint(d.Entry.Values[k]))
		}
	}
	n, err := g.s.deadLetterScript.Run(ctx, g.s.rdb, []string{g.stream, g.dead}, args...).Int64()
	if err != nil {
		return 0, g.wrap(fmt.Sprintf("dead-letter %d entries", len(dead)), err)
	}
	return int(n), nil
}

// Trim removes entries of partition p's stream that every consumer group
// has processed and that are older than retention (trim.lua: XTRIM MINID
// below the oldest entry any group still needs). It returns how many were
// removed and the MINID used ("" when nothing could be trimmed).
func (s *Store) Trim(ctx context.Context, p int, retention time.Duration) (int64, string, error) {
	stream := s.keys.Stream(p)
	res, err := s.trimScript.Run(ctx, s.rdb, []string{stream}, retention.Milliseconds()).Slice()
	if err != nil {
		return 0, "", fmt.Errorf("trim %s: %w", stream, err)
	}
	if len(res) != 2 {
		return 0, "", fmt.Errorf("trim %s: unexpected reply %v", stream, res)
	}
	n, _ := res[0].(int64)
	minID, _ := res[1].(string)
	return n, minID, nil
}
