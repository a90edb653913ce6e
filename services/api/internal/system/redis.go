package system

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/keys"
)

// Redis reads the groups with XINFO GROUPS and XINFO CONSUMERS. It is the
// only file of the package that talks to Redis, so it can move into the
// store package as a whole.
type Redis struct {
	rdb        redis.UniversalClient
	keys       keys.Keys
	partitions int
	group      string
}

var _ Groups = (*Redis)(nil)

// NewRedis reads group on the streams of partitions 0..partitions-1 of k.
func NewRedis(rdb redis.UniversalClient, k keys.Keys, partitions int, group string) *Redis {
	return &Redis{rdb: rdb, keys: k, partitions: max(partitions, 1), group: group}
}

// Groups reads every partition's group: one pipeline of XINFO GROUPS, then
// one of XINFO CONSUMERS for the partitions where the group exists.
func (r *Redis) Groups(ctx context.Context) ([]Group, error) {
	out := make([]Group, r.partitions)
	infos := make([]*redis.XInfoGroupsCmd, r.partitions)
	// The pipeline's own error is the first failed command's; each command
	// is judged on its own below, since a missing stream is no failure.
	_, _ = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for part := range infos {
			infos[part] = p.XInfoGroups(ctx, r.keys.Stream(part))
		}
		return nil
	})
	var withGroup []int
	for part, c := range infos {
		out[part] = Group{Partition: part, Stream: r.keys.Stream(part), Consumers: []Consumer{}}
		gs, err := c.Result()
		if err != nil {
			if noSuchKey(err) {
				continue // no stream yet: nothing was ever written there
			}
			return nil, fmt.Errorf("xinfo groups %s: %w", r.keys.Stream(part), err)
		}
		for _, g := range gs {
			if g.Name != r.group {
				continue
			}
			out[part].Exists = true
			out[part].Pending = g.Pending
			if g.Lag >= 0 { // go-redis turns Redis's null lag into -1
				lag := g.Lag
				out[part].Lag = &lag
			}
			withGroup = append(withGroup, part)
		}
	}
	if len(withGroup) == 0 {
		return out, nil
	}
	cons := make([]*redis.XInfoConsumersCmd, len(withGroup))
	_, _ = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, part := range withGroup {
			cons[i] = p.XInfoConsumers(ctx, r.keys.Stream(part), r.group)
		}
		return nil
	})
	for i, part := range withGroup {
		cs, err := cons[i].Result()
		if err != nil {
			// The group can vanish between the two pipelines (stream deleted).
			if noSuchKey(err) || redis.HasErrorPrefix(err, "NOGROUP") {
				out[part] = Group{Partition: part, Stream: r.keys.Stream(part), Consumers: []Consumer{}}
				continue
			}
			return nil, fmt.Errorf("xinfo consumers %s %s: %w", r.keys.Stream(part), r.group, err)
		}
		for _, c := range cs {
			out[part].Consumers = append(out[part].Consumers, Consumer{Name: c.Name, Pending: c.Pending, IdleMs: c.Idle.Milliseconds()})
		}
	}
	return out, nil
}

// noSuchKey reports Redis's answer to XINFO on a stream that does not exist.
func noSuchKey(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.Contains(re.Error(), "no such key")
}
