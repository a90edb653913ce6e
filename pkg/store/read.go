package store

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/redis/go-redis/v9"
)

// ErrRange means a range is empty, reversed or not on whole minutes.
var ErrRange = errors.New("bucket range must be whole minutes with from < to")

// Summary reads every partition's summary of typ in one pipeline and
// merges them. found is false when nothing of that type was aggregated.
func (s *Store) Summary(ctx context.Context, typ string) (sum Summary, found bool, err error) {
	cmds := make([]*redis.MapStringStringCmd, s.partitions)
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for part := range cmds {
			cmds[part] = p.HGetAll(ctx, s.keys.Summary(part, typ))
		}
		return nil
	})
	if err != nil {
		return Summary{}, false, fmt.Errorf("%w: read summary of %q: %w", ErrUnavailable, typ, err)
	}
	for _, c := range cmds {
		one, ok, err := SummaryFromHash(c.Val())
		if err != nil {
			return Summary{}, false, fmt.Errorf("decode summary of %q: %w", typ, err)
		}
		found = found || ok
		sum = sum.Merge(one)
	}
	return sum, found, nil
}

// TypeSeen is one entry of the known-types set.
type TypeSeen struct {
	// Type is the metric type.
	Type string
	// LastSeen is its latest event time, Unix microseconds.
	LastSeen int64
}

// Types reads every partition's types set in one pipeline and merges them
// (the latest last-seen wins), sorted by type.
func (s *Store) Types(ctx context.Context) ([]TypeSeen, error) {
	cmds := make([]*redis.ZSliceCmd, s.partitions)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for part := range cmds {
			cmds[part] = p.ZRangeWithScores(ctx, s.keys.Types(part), 0, -1)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: read types: %w", ErrUnavailable, err)
	}
	last := make(map[string]int64)
	for _, c := range cmds {
		for _, z := range c.Val() {
			name, _ := z.Member.(string)
			if cur, ok := last[name]; !ok || int64(z.Score) > cur {
				last[name] = int64(z.Score)
			}
		}
	}
	out := make([]TypeSeen, 0, len(last))
	for name, us := range last {
		out = append(out, TypeSeen{name, us})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out, nil
}

// Range is what Buckets returns.
type Range struct {
	// Minutes holds one cell per minute of the range, Count 0 where
	// nothing was bucketed (or the hour has expired).
	Minutes []Cell
	// Known reports that the type is in some partition's types set: it has
	// been aggregated at some time, whether or not inside the range.
	Known bool
}

// Buckets returns the cells of the minutes [from, to) of typ (Unix
// microseconds, both on whole minutes), merged over all partitions:
// Minutes[i] is the minute starting at from + i minutes; and whether the
// type is known at all. Every hour hash of every partition and the type's
// score in every types set are read in one pipeline: one round trip (one
// per node on a cluster), whatever the length of the range. It is the one
// read path of the api's windowed summary and series and of the
// aggregator's tests, so what is tested is what is served.
func (s *Store) Buckets(ctx context.Context, typ string, from, to int64) (Range, error) {
	if from < 0 || from >= to || from%MinuteMicros != 0 || to%MinuteMicros != 0 {
		return Range{}, fmt.Errorf("%w: [%d, %d)", ErrRange, from, to)
	}
	firstHour, lastHour := Hour(from), Hour(to-1)
	nh := int(lastHour - firstHour + 1)
	cmds := make([]*redis.MapStringStringCmd, 0, nh*s.partitions)
	known := make([]*redis.FloatCmd, 0, s.partitions)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for h := firstHour; h <= lastHour; h++ {
			for part := range s.partitions {
				cmds = append(cmds, p.HGetAll(ctx, s.keys.Bucket(part, typ, h)))
			}
		}
		for part := range s.partitions {
			known = append(known, p.ZScore(ctx, s.keys.Types(part), typ))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Range{}, fmt.Errorf("%w: read buckets of %q: %w", ErrUnavailable, typ, err)
	}
	var out Range
	for _, c := range known {
		if c.Err() == nil {
			out.Known = true
		} else if !errors.Is(c.Err(), redis.Nil) {
			return Range{}, fmt.Errorf("%w: read types set: %w", ErrUnavailable, c.Err())
		}
	}
	cells := make([]Cell, (to-from)/MinuteMicros)
	for i, cmd := range cmds {
		if cmd.Err() != nil {
			return Range{}, fmt.Errorf("%w: read buckets of %q: %w", ErrUnavailable, typ, cmd.Err())
		}
		fields := cmd.Val()
		if len(fields) == 0 {
			continue
		}
		hc, err := HourFromHash(fields)
		if err != nil {
			return Range{}, fmt.Errorf("bucket %s: %w", cmd.Args()[1], err)
		}
		hourStart := (firstHour + int64(i/s.partitions)) * HourMicros
		for m := range hc.Minutes {
			if hc.Minutes[m].Count == 0 {
				continue
			}
			at := hourStart + int64(m)*MinuteMicros
			if at < from || at >= to {
				continue
			}
			j := (at - from) / MinuteMicros
			cells[j] = cells[j].Merge(hc.Minutes[m])
		}
	}
	out.Minutes = cells
	return out, nil
}

// Fold merges runs of per consecutive minutes into one cell each (the
// points of a series with step = per minutes). A last, shorter run is
// folded too.
func Fold(minutes []Cell, per int) []Cell {
	if per < 1 {
		per = 1
	}
	out := make([]Cell, 0, (len(minutes)+per-1)/per)
	for i := 0; i < len(minutes); i += per {
		var c Cell
		for _, m := range minutes[i:min(i+per, len(minutes))] {
			c = c.Merge(m)
		}
		out = append(out, c)
	}
	return out
}

// Total merges every cell (the summary of a range).
func Total(cells []Cell) Cell {
	var c Cell
	for _, m := range cells {
		c = c.Merge(m)
	}
	return c
}

// Minutes is Buckets without Known: the merged cells of [from, to).
func (s *Store) Minutes(ctx context.Context, typ string, from, to int64) ([]Cell, error) {
	rg, err := s.Buckets(ctx, typ, from, to)
	return rg.Minutes, err
}
