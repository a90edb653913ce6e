package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// GroupStats is one partition's consumer group as XINFO reports it, for
// operators (the api's /api/system and dashboard).
type GroupStats struct {
	// Partition is p of the stream {<STREAM_KEY>:p}:stream.
	Partition int
	// Stream is the stream key.
	Stream string
	// Exists is false until an aggregator has created the group (or the
	// stream does not exist yet); the figures are then zero and Lag nil.
	Exists bool
	// Lag is how many entries the group has not read yet, counted as
	// GroupInfo.Lag is (exact up to LagCountCap); nil when Redis cannot
	// tell (far behind, and XINFO's figure is null or below the count).
	Lag *int64
	// Pending is how many delivered entries are not acknowledged yet.
	Pending int64
	// Consumers are the group's members.
	Consumers []ConsumerStats
}

// ConsumerStats is one consumer of a group.
type ConsumerStats struct {
	// Name is the consumer name.
	Name string
	// Pending is how many entries it was delivered and has not acknowledged.
	Pending int64
	// Idle is the time since its last read or claim attempt.
	Idle time.Duration
}

// GroupStats reads group on every partition: one pipeline of XINFO GROUPS, then
// one of XINFO CONSUMERS for the partitions where the group exists.
func (s *Store) GroupStats(ctx context.Context, group string) ([]GroupStats, error) {
	out := make([]GroupStats, s.partitions)
	infos := make([]*redis.XInfoGroupsCmd, s.partitions)
	// The pipeline's own error is the first failed command's; each command
	// is judged on its own below, since a missing stream is no failure.
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for part := range infos {
			infos[part] = p.XInfoGroups(ctx, s.keys.Stream(part))
		}
		return nil
	})
	var withGroup []int
	for part, c := range infos {
		out[part] = GroupStats{Partition: part, Stream: s.keys.Stream(part), Consumers: []ConsumerStats{}}
		gs, err := c.Result()
		if err != nil {
			if noSuchKey(err) {
				continue // no stream yet: nothing was ever written there
			}
			return nil, fmt.Errorf("xinfo groups %s: %w", s.keys.Stream(part), err)
		}
		for _, g := range gs {
			if g.Name != group {
				continue
			}
			out[part].Exists = true
			out[part].Pending = g.Pending
			// go-redis turns Redis's null lag into -1.
			lag, err := s.lag(ctx, s.keys.Stream(part), g.LastDeliveredID, g.Lag)
			if err != nil {
				return nil, err
			}
			if lag >= 0 {
				out[part].Lag = &lag
			}
			withGroup = append(withGroup, part)
		}
	}
	if len(withGroup) == 0 {
		return out, nil
	}
	cons := make([]*redis.XInfoConsumersCmd, len(withGroup))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, part := range withGroup {
			cons[i] = p.XInfoConsumers(ctx, s.keys.Stream(part), group)
		}
		return nil
	})
	for i, part := range withGroup {
		cs, err := cons[i].Result()
		if err != nil {
			// The group can vanish between the two pipelines (stream deleted).
			if noSuchKey(err) || redis.HasErrorPrefix(err, "NOGROUP") {
				out[part] = GroupStats{Partition: part, Stream: s.keys.Stream(part), Consumers: []ConsumerStats{}}
				continue
			}
			return nil, fmt.Errorf("xinfo consumers %s %s: %w", s.keys.Stream(part), group, err)
		}
		for _, c := range cs {
			out[part].Consumers = append(out[part].Consumers, ConsumerStats{Name: c.Name, Pending: c.Pending, Idle: c.Idle})
		}
	}
	return out, nil
}

// noSuchKey reports Redis's answer to XINFO on a stream that does not exist.
func noSuchKey(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.Contains(re.Error(), "no such key")
}
