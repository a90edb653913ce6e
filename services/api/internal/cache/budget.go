package cache

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxBytes is the budget of a cache built without Options.Budget
// (CACHE_MAX_BYTES' default).
const DefaultMaxBytes = 64 << 20

// EntryOverhead is what every entry costs beyond its key and value bytes:
// its map slot, list element and entry record, rounded up to the
// allocator's size classes.
const EntryOverhead = 192

// Budget is a byte budget shared by several caches (Options.Budget): the
// weights of all their entries together never exceed Max. It is safe for
// concurrent use; a cache joins it in New and stays a member for the
// budget's life.
//
// Weight: the key's length + the value's bytes (Options.Weigh, or the size
// of a []byte or string) + EntryOverhead. It estimates the heap an entry
// keeps alive, not the process' memory: Go's collector lets the heap grow
// past the live data before it runs (GOGC), and a value shared with an
// in-flight response is counted once.
//
// Eviction: to store an entry, the members' entries that expire first are
// dropped until it fits, whichever cache holds them. Expired entries kept
// for stale-if-error expire before any fresh one, so they go first; among
// fresh ones, the one with the least freshness left goes. The entry being
// stored is never the victim, so the newest value is kept.
//
// An entry heavier than MaxEntry (a quarter of Max) is served to the
// callers of its load but not stored (Result.NotStored), so one large
// response cannot flush every other entry of every cache.
type Budget struct {
	max      int64
	maxEntry int64
	used     atomic.Int64 // written under mu, read without it

	// mu serialises every store, removal and eviction of every member, so
	// an eviction may lock any member's cache: the order is always mu
	// first, then one member's lock at a time. Hits never take it.
	mu      sync.Mutex
	members []member
}

// member is the view a Budget has of one cache; its methods lock the
// cache themselves and are called with Budget.mu held.
type member interface {
	// soonest is the expiry of the entry that expires first; false when empty.
	soonest() (time.Time, bool)
	// evictSoonest drops that entry, subtracting its weight from the budget.
	evictSoonest()
}

// NewBudget returns a budget of maxBytes (> 0) for caches to share.
func NewBudget(maxBytes int64) (*Budget, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("cache: budget must be > 0 bytes, got %d", maxBytes)
	}
	return &Budget{max: maxBytes, maxEntry: max(maxBytes/4, 1)}, nil
}

// Max is the budget in bytes.
func (b *Budget) Max() int64 { return b.max }

// MaxEntry is the heaviest entry that is stored.
func (b *Budget) MaxEntry() int64 { return b.maxEntry }

// Bytes is the weight of all the members' entries, <= Max.
func (b *Budget) Bytes() int64 { return b.used.Load() }

func (b *Budget) join(m member) {
	b.mu.Lock()
	b.members = append(b.members, m)
	b.mu.Unlock()
}

// reserve evicts until w more bytes fit. Called with mu held and w <= max.
func (b *Budget) reserve(w int64) {
	for b.used.Load()+w > b.max {
		var victim member
		var at time.Time
		for _, m := range b.members {
			if t, ok := m.soonest(); ok && (victim == nil || t.Before(at)) {
				victim, at = m, t
			}
		}
		if victim == nil {
			return // nothing left to evict; cannot happen while used > 0
		}
		victim.evictSoonest()
	}
}
