package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
)

// Limit is a fixed-window quota: Max requests per Window for one client.
// A zero Limit switches counting off.
type Limit struct {
	Max    int
	Window time.Duration
}

// Idempotency is a request's Idempotency-Key; the zero value is none.
type Idempotency struct {
	// Key is the key as the client sent it (unquoted); "" means none.
	Key string
	// Fingerprint is the SHA-256 of the request body (after any
	// Content-Encoding is removed): a record with another fingerprint is
	// another request reusing the key.
	Fingerprint [sha256.Size]byte
	// TTL is how long the record is kept (IDEMPOTENCY_TTL, >= 1ms).
	TTL time.Duration
}

// IdempotencyStatus says what a request's Idempotency-Key record did.
type IdempotencyStatus uint8

const (
	// IdemNone: the request carried no key, or none was recorded under
	// it yet (then it ran as any request, and a 201 recorded it).
	IdemNone IdempotencyStatus = iota
	// IdemReplayed: the key's record matched: nothing was counted or
	// written, and IDs are the original ids.
	IdemReplayed
	// IdemKeyReused: the key's record is another body's: nothing was
	// counted or written, IDs is empty.
	IdemKeyReused
)

// AppendResult is what Redis answered for one request.
type AppendResult struct {
	// Allowed is false when the client was over its quota (nothing was
	// appended and IDs is empty) or when its Idempotency-Key belongs to
	// another body (Idempotency is IdemKeyReused).
	Allowed bool
	// Idempotency is what the request's Idempotency-Key record did.
	Idempotency IdempotencyStatus
	// Count is the client's request count in the current window,
	// including this one (-1 when the limit is off).
	Count int64
	// PTTL is the time until the window ends, from Redis' clock (-1ms
	// when the limit is off).
	PTTL time.Duration
	// IDs are the stream entry ids, one per metric, in order.
	IDs []string
	// TypeLimit is set when the request would have brought its
	// partition's metric types past MAX_TYPES: nothing was appended and
	// no quota used (Allowed is false, Count and PTTL are -1).
	TypeLimit *TypeLimit
}

// DefaultMaxTypes is the default MAX_TYPES.
const DefaultMaxTypes = 10_000

// TypeLimit says which type a request was refused for.
type TypeLimit struct {
	// Type is the first of the request's new types past the cap.
	Type string
	// Max is the cap (MAX_TYPES, per partition).
	Max int
}

// Option is an optional setting of New.
type Option func(*Store) error

// WithMaxTypes caps the metric types of each partition at max (MAX_TYPES,
// default DefaultMaxTypes; at least 1). A request that would add a type
// past it is refused whole, atomically with the append (append.lua), with
// AppendResult.TypeLimit set. The cap is per partition: on several
// partitions the deployment may hold up to partitions x max types, since
// clients routed to different partitions may bring different types.
func WithMaxTypes(max int) Option {
	return func(s *Store) error {
		if max < 1 {
			return fmt.Errorf("store: max types must be >= 1, got %d", max)
		}
		s.maxTypes = max
		return nil
	}
}

// MaxTypes is the cap on each partition's metric types (MAX_TYPES).
func (s *Store) MaxTypes() int { return s.maxTypes }

// AppendCall is one request's share of an append.lua call. NewAppendCall
// formats it in the caller's goroutine, so that work runs in parallel even
// when one goroutine sends many calls with AppendMany.
type AppendCall struct {
	part   int
	rlKey  string
	limit  Limit
	n      int
	values []any // n * len(entryFieldNames) entry values
	types  []any // the distinct types of the metrics (MAX_TYPES)

	// idemKey is the record key ("" = no Idempotency-Key), fp the hex
	// fingerprint and idemTTL its TTL in milliseconds.
	idemKey, fp string
	idemTTL     int64

	// Result and Err are set by AppendMany.
	Result AppendResult
	Err    error
}

// callPool recycles calls: per request they were several allocations on
// the hot path.
var callPool = sync.Pool{New: func() any { return new(AppendCall) }}

// NewAppendCall prepares the append of ms for client under limit, with
// idem's record when idem.Key is set. Release it once its outcome has been
// read.
func (s *Store) NewAppendCall(client string, limit Limit, ms []metric.Metric, idem Idempotency) *AppendCall {
	c := callPool.Get().(*AppendCall)
	c.part = s.PartitionOf(client)
	c.rlKey = s.rlPrefixes[c.part] + client
	c.limit, c.n = limit, len(ms)
	c.idemKey, c.fp, c.idemTTL = "", "", 0
	if idem.Key != "" {
		c.idemKey = s.keys.Idempotency(c.part, client, idem.Key)
		c.fp = hex.EncodeToString(idem.Fingerprint[:])
		c.idemTTL = max(idem.TTL.Milliseconds(), 1)
	}
	c.values = slices.Grow(c.values[:0], len(ms)*len(entryFieldNames))
	for _, m := range ms {
		c.values = appendEntryValues(c.values, m)
	}
	c.types = distinctTypes(c.types[:0], ms)
	return c
}

// distinctTypes appends the distinct types of ms to dst, in first-seen
// order. Most requests carry one type or a few, so it looks back through
// dst and only builds a set for a batch of many types.
func distinctTypes(dst []any, ms []metric.Metric) []any {
	const scan = 16
	var seen map[string]struct{}
	for _, m := range ms {
		if seen == nil {
			if slices.ContainsFunc(dst, func(t any) bool { return t.(string) == m.Type }) {
				continue
			}
			dst = append(dst, m.Type)
			if len(dst) > scan {
				seen = make(map[string]struct{}, len(ms))
				for _, t := range dst {
					seen[t.(string)] = struct{}{}
				}
			}
			continue
		}
		if _, ok := seen[m.Type]; !ok {
			seen[m.Type] = struct{}{}
			dst = append(dst, m.Type)
		}
	}
	return dst
}

// Release recycles c. A call that may still be in a batch being sent must
// not be released; leave it to the garbage collector.
func (c *AppendCall) Release() {
	if cap(c.values) > 1024 {
		c.values = nil // let batch-sized slices go rather than pin them
	}
	clear(c.values[:cap(c.values)])
	if cap(c.types) > 1024 {
		c.types = nil
	}
	clear(c.types[:cap(c.types)])
	c.Result, c.Err = AppendResult{}, nil
	callPool.Put(c)
}

// PartitionOf picks the stream partition of a client: FNV-1a of the client
// key, mod the partition count. A client always lands on the same
// partition, so its rate-limit counter and the stream it appends to share
// one hash tag (one cluster slot) and one script call can do both; its
// metrics keep their order; and clients spread evenly over the partitions.
// Every api replica computes the same partition, so the quota stays shared.
func (s *Store) PartitionOf(client string) int { return PartitionOf(client, s.partitions) }

// PartitionOf is the partition of client among n (FNV-1a mod n).
func PartitionOf(client string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(client))
	return int(h.Sum32() % uint32(n))
}

// Append counts one request against client's quota and, when allowed,
// appends ms to the client's partition stream, in one script call. With
// idem.Key set, the same call first looks up the client's record of that
// key (a replay or a reused key counts and writes nothing) and, after a
// successful append, records the ids under it. It is never retried: a
// retry after a timeout could store the metrics twice. An error wraps
// ErrUnavailable when the append certainly did not run, else
// ErrOutcomeUnknown.
func (s *Store) Append(ctx context.Context, client string, limit Limit, ms []metric.Metric, idem Idempotency) (AppendResult, error) {
	c := s.NewAppendCall(client, limit, ms, idem)
	s.AppendMany(ctx, []*AppendCall{c})
	res, err := c.Result, c.Err
	c.Release()
	return res, err
}

// appendGroup is the calls for one partition: one script call.
type appendGroup struct {
	calls []*AppendCall
	keys  []string
	args  []any
	cmd   *redis.Cmd
	// maxTypes is the cap the types block sent (MAX_TYPES).
	maxTypes int
}

// AppendMany sends calls with one append.lua call per partition (pipelined
// when there are several) and sets each call's Result or Err. Each request
// still gets its own limiter decision and its own ids. ctx bounds the whole
// exchange; it serves every call, so no single request's context should be
// passed here by a caller that batches.
//
// Nothing is sent twice, except after NOSCRIPT (the script cache is empty
// after a Redis restart): Redis did not run the call, so it is re-sent as
// EVAL, which also loads the script for the next batch.
func (s *Store) AppendMany(ctx context.Context, calls []*AppendCall) {
	var groups []*appendGroup
	byPart := make(map[int]*appendGroup, 1)
	for _, c := range calls {
		g := byPart[c.part]
		if g == nil {
			// Room for the stream, one request's counter and the two types keys.
			keys := make([]string, 1, 4)
			keys[0] = s.streams[c.part]
			g = &appendGroup{keys: keys, args: appendHead()}
			byPart[c.part] = g
			groups = append(groups, g)
		}
		g.calls = append(g.calls, c)
		g.keys = append(g.keys, c.rlKey)
		g.args = append(g.args, c.n, c.limit.Max, c.limit.Window.Milliseconds())
		g.args = append(g.args, c.values...)
	}
	if len(groups) == 0 {
		return
	}
	for part, g := range byPart {
		g.addIdempotency()
		g.addTypesBlock(s, part)
	}
	s.execAppend(ctx, groups, false)
	var retry []*appendGroup
	for _, g := range groups {
		if err := g.cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			retry = append(retry, g)
		}
	}
	if len(retry) > 0 {
		s.execAppend(ctx, retry, true)
	}
	for _, g := range groups {
		g.deliver()
	}
}

// addIdempotency appends the Idempotency-Key part of the script's KEYS and
// ARGV: every request's record key (the stream again when it has none), then
// its fingerprint and TTL after all the requests.
func (g *appendGroup) addIdempotency() {
	for _, c := range g.calls {
		if c.idemKey == "" {
			g.keys = append(g.keys, g.keys[0])
		} else {
			g.keys = append(g.keys, c.idemKey)
		}
	}
	for _, c := range g.calls {
		g.args = append(g.args, c.fp, c.idemTTL)
	}
}

// addTypesBlock adds append.lua's MAX_TYPES part to g: the partition's
// types and admitted-types keys, the cap and each request's distinct types.
func (g *appendGroup) addTypesBlock(s *Store, part int) {
	g.keys = append(g.keys, s.typeKeys[part][0], s.typeKeys[part][1])
	g.maxTypes = s.maxTypes
	g.args = append(g.args, s.maxTypesArg)
	for _, c := range g.calls {
		g.args = append(g.args, len(c.types))
		g.args = append(g.args, c.types...)
	}
}

// appendHead is ARGV before the requests: the entry's field count and
// names.
func appendHead() []any {
	head := make([]any, 0, 1+len(entryFieldNames))
	head = append(head, len(entryFieldNames))
	for _, name := range entryFieldNames {
		head = append(head, name)
	}
	return head
}

// execAppend sends one EVALSHA (EVAL when load is set) per group,
// pipelined.
func (s *Store) execAppend(ctx context.Context, groups []*appendGroup, load bool) {
	run := func(c redis.Scripter, g *appendGroup) *redis.Cmd {
		if load {
			return s.appendScript.Eval(ctx, c, g.keys, g.args...)
		}
		return s.appendScript.EvalSha(ctx, c, g.keys, g.args...)
	}
	if len(groups) == 1 {
		groups[0].cmd = run(s.rdb, groups[0])
		return
	}
	pipe := s.rdb.Pipeline()
	for _, g := range groups {
		g.cmd = run(pipe, g)
	}
	// Exec's error is the first failed command's; go-redis sets each
	// command's own error, and a command that succeeded keeps its reply.
	_, _ = pipe.Exec(ctx)
}

func (g *appendGroup) deliver() {
	replies, err := g.cmd.Slice()
	if err == nil && len(replies) != len(g.calls) {
		err = fmt.Errorf("append.lua answered %d requests of %d", len(replies), len(g.calls))
	}
	err = classifyWrite(err)
	for i, c := range g.calls {
		if err != nil {
			c.Err = fmt.Errorf("append %d metrics: %w", c.n, err)
			continue
		}
		raw, ok := replies[i].([]any)
		if !ok {
			c.Err = fmt.Errorf("%w: append.lua reply %d is %T", ErrOutcomeUnknown, i, replies[i])
			continue
		}
		if len(raw) == 4 && raw[0] == int64(replyTypeLimit) {
			// MAX_TYPES: the request was refused before its first write.
			typ, _ := raw[3].(string)
			c.Result = AppendResult{Count: -1, PTTL: -time.Millisecond, TypeLimit: &TypeLimit{Type: typ, Max: g.maxTypes}}
			continue
		}
		c.Result, c.Err = parseAppendReply(raw, c.n)
	}
}

// The first value of append.lua's reply per request.
const (
	replyLimited  = 0
	replyAppended = 1
	replyReplayed = 2
	replyReused   = 3
	// replyTypeLimit: the request would bring its partition's types past
	// MAX_TYPES; nothing was written.
	replyTypeLimit = 4
)

// parseAppendReply reads one request's reply. A reply that makes no sense
// is ErrOutcomeUnknown: the script ran, so the write may have happened.
func parseAppendReply(raw []any, n int) (AppendResult, error) {
	if len(raw) < 3 {
		return AppendResult{}, fmt.Errorf("%w: append.lua replied %d values", ErrOutcomeUnknown, len(raw))
	}
	status, _ := raw[0].(int64)
	count, _ := raw[1].(int64)
	pttl, _ := raw[2].(int64)
	res := AppendResult{Allowed: status == replyAppended || status == replyReplayed, Count: count, PTTL: time.Duration(pttl) * time.Millisecond}
	switch status {
	case replyLimited:
		return res, nil
	case replyReused:
		res.Idempotency = IdemKeyReused
		return res, nil
	case replyReplayed:
		res.Idempotency = IdemReplayed
		var packed string
		if len(raw) == 4 {
			packed, _ = raw[3].(string)
		}
		ids, err := unpackIDs(packed, n)
		if err != nil {
			return AppendResult{}, fmt.Errorf("%w: append.lua replayed record %q for %d metrics: %w", ErrOutcomeUnknown, packed, n, err)
		}
		res.IDs = ids
		return res, nil
	case replyAppended:
	default:
		return AppendResult{}, fmt.Errorf("%w: append.lua status %d", ErrOutcomeUnknown, status)
	}
	if len(raw) != 3+n {
		return AppendResult{}, fmt.Errorf("%w: append.lua returned %d ids for %d metrics", ErrOutcomeUnknown, len(raw)-3, n)
	}
	res.IDs = make([]string, n)
	for i := range n {
		id, ok := raw[3+i].(string)
		if !ok {
			return AppendResult{}, fmt.Errorf("%w: append.lua id %d is %T", ErrOutcomeUnknown, i, raw[3+i])
		}
		res.IDs[i] = id
	}
	return res, nil
}

// unpackIDs expands an Idempotency-Key record's ids (append.lua's
// pack_ids): space-separated ids, where "+k" stands for the k ids that
// follow the one before it in the same millisecond.
func unpackIDs(packed string, n int) ([]string, error) {
	ids := make([]string, 0, n)
	var ms string
	var seq uint64
	for tok := range strings.FieldsSeq(packed) {
		if run, ok := strings.CutPrefix(tok, "+"); ok {
			k, err := strconv.Atoi(run)
			if err != nil || k < 1 || len(ids) == 0 || len(ids)+k > n {
				return nil, fmt.Errorf("bad run %q", tok)
			}
			for range k {
				seq++
				ids = append(ids, ms+"-"+strconv.FormatUint(seq, 10))
			}
			continue
		}
		m, s, ok := strings.Cut(tok, "-")
		v, err := strconv.ParseUint(s, 10, 64)
		if !ok || err != nil || m == "" || len(ids) == n {
			return nil, fmt.Errorf("bad id %q", tok)
		}
		ms, seq = m, v
		ids = append(ids, tok)
	}
	if len(ids) != n {
		return nil, fmt.Errorf("%d ids for %d metrics", len(ids), n)
	}
	return ids, nil
}

// Values is the number of entry values the call carries (its share of the
// script's arguments).
func (c *AppendCall) Values() int { return len(c.values) }
