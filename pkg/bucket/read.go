package bucket

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/keys"
)

// ErrRange means a range is empty, reversed or not on whole minutes.
var ErrRange = errors.New("bucket range must be whole minutes with from < to")

// Reader reads the buckets of every partition and merges them. It is the
// one read path of the api's windowed summary and series (and of the
// aggregator's tests, which check it against brute force), so what is
// tested is what is served.
type Reader struct {
	rdb        redis.UniversalClient
	keys       keys.Keys
	partitions int
}

// NewReader returns a Reader of partitions 0..partitions-1 of k.
func NewReader(rdb redis.UniversalClient, k keys.Keys, partitions int) (*Reader, error) {
	if rdb == nil {
		return nil, errors.New("bucket: nil redis client")
	}
	if partitions < 1 {
		return nil, fmt.Errorf("bucket: partitions must be >= 1, got %d", partitions)
	}
	return &Reader{rdb: rdb, keys: k, partitions: partitions}, nil
}

// Range is what Read returns.
type Range struct {
	// Minutes holds one cell per minute of the range, Count 0 where
	// nothing was bucketed (or the hour has expired).
	Minutes []Cell
	// Known reports that the type is in some partition's types set: it has
	// been aggregated at some time, whether or not inside the range.
	Known bool
}

// Minutes returns the cells of the minutes [from, to) of typ (Unix
// microseconds, both on whole minutes), merged over all partitions: element
// i is the minute starting at from + i minutes.
func (r *Reader) Minutes(ctx context.Context, typ string, from, to int64) ([]Cell, error) {
	rg, err := r.Read(ctx, typ, from, to)
	return rg.Minutes, err
}

// Read is Minutes plus whether the type is known at all. Every hour hash
// of every partition and the type's score in every types set are read in
// one pipeline: one round trip (one per node on a cluster), whatever the
// length of the range.
func (r *Reader) Read(ctx context.Context, typ string, from, to int64) (Range, error) {
	if from < 0 || from >= to || from%MinuteMicros != 0 || to%MinuteMicros != 0 {
		return Range{}, fmt.Errorf("%w: [%d, %d)", ErrRange, from, to)
	}
	firstHour, lastHour := Hour(from), Hour(to-1)
	nh := int(lastHour - firstHour + 1)
	cmds := make([]*redis.MapStringStringCmd, 0, nh*r.partitions)
	known := make([]*redis.FloatCmd, 0, r.partitions)
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for h := firstHour; h <= lastHour; h++ {
			for part := range r.partitions {
				cmds = append(cmds, p.HGetAll(ctx, r.keys.Bucket(part, typ, h)))
			}
		}
		for part := range r.partitions {
			known = append(known, p.ZScore(ctx, r.keys.Types(part), typ))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Range{}, fmt.Errorf("read buckets of %q: %w", typ, err)
	}
	var out Range
	for _, c := range known {
		if c.Err() == nil {
			out.Known = true
		} else if !errors.Is(c.Err(), redis.Nil) {
			return Range{}, fmt.Errorf("read types set: %w", c.Err())
		}
	}
	cells := make([]Cell, (to-from)/MinuteMicros)
	for i, cmd := range cmds {
		if cmd.Err() != nil {
			return Range{}, fmt.Errorf("read buckets of %q: %w", typ, cmd.Err())
		}
		fields := cmd.Val()
		if len(fields) == 0 {
			continue
		}
		hc, err := FromHash(fields)
		if err != nil {
			return Range{}, fmt.Errorf("bucket %s: %w", cmd.Args()[1], err)
		}
		hourStart := (firstHour + int64(i/r.partitions)) * HourMicros
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
