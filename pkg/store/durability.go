package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Durability is what Redis promises about a write it acknowledged, read
// from CONFIG GET appendonly appendfsync.
type Durability string

// The durability levels, strongest first.
const (
	// DurabilityAlways (appendfsync always): the AOF is fsynced before the
	// reply, so an acknowledged write survives a crash of Redis or of its
	// host.
	DurabilityAlways Durability = "always"
	// DurabilityEverysec (appendfsync everysec): a host crash loses up to
	// about a second of acknowledged writes, and even a crash of the Redis
	// process can lose some (it postpones the AOF write while a background
	// fsync is pending but still replies).
	DurabilityEverysec Durability = "everysec"
	// DurabilityNo (appendfsync no): the kernel flushes when it likes; a
	// host crash loses up to its flush interval (about 30s on Linux).
	DurabilityNo Durability = "no"
	// DurabilityOff (appendonly no): nothing is logged; a restart loses
	// everything since the last RDB snapshot, if any.
	DurabilityOff Durability = "off"
	// DurabilityUnknown: Redis refused CONFIG (managed services rename or
	// forbid it), or answered something else.
	DurabilityUnknown Durability = "unknown"
)

// Durabilities lists every level, strongest first, then unknown.
var Durabilities = []Durability{DurabilityAlways, DurabilityEverysec, DurabilityNo, DurabilityOff, DurabilityUnknown}

// Weaker reports whether d promises less than always (unknown does: it
// promises nothing that can be checked).
func (d Durability) Weaker() bool { return d != DurabilityAlways }

func (d Durability) rank() int {
	for i, x := range Durabilities {
		if x == d {
			return i
		}
	}
	return len(Durabilities)
}

// durabilityOf maps CONFIG GET's answer to a level.
func durabilityOf(cfg map[string]string) Durability {
	switch aof, fsync := cfg["appendonly"], cfg["appendfsync"]; {
	case aof == "no":
		return DurabilityOff
	case aof != "yes":
		return DurabilityUnknown
	case fsync == "always":
		return DurabilityAlways
	case fsync == "everysec":
		return DurabilityEverysec
	case fsync == "no":
		return DurabilityNo
	}
	return DurabilityUnknown
}

// Durability reads what Redis promises for an acknowledged write
// (CONFIG GET append*: appendonly and appendfsync, in one pattern that
// Redis before 7.0 takes too). On a
// cluster it is the weakest of the masters (every master holds some
// partitions). A Redis that refuses CONFIG is DurabilityUnknown with no
// error; an error means Redis did not answer.
func (s *Store) Durability(ctx context.Context) (Durability, error) {
	one := func(ctx context.Context, c redis.Cmdable) (Durability, error) {
		cfg, err := c.ConfigGet(ctx, "append*").Result()
		if err != nil {
			var reply redis.Error
			if errors.As(err, &reply) {
				return DurabilityUnknown, nil // refused (renamed, ACL): an answer all the same
			}
			return DurabilityUnknown, fmt.Errorf("%w: config get appendonly appendfsync: %w", ErrUnavailable, err)
		}
		return durabilityOf(cfg), nil
	}
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return one(ctx, s.rdb)
	}
	var mu sync.Mutex
	weakest := DurabilityAlways
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		d, err := one(ctx, c)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if d.rank() > weakest.rank() {
			weakest = d
		}
		return nil
	})
	if err != nil {
		return DurabilityUnknown, err
	}
	return weakest, nil
}
