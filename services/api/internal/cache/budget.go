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
// Eviction: to store an entry, other entries are dropped until it fits,
// whichever member holds them, in this order: first expired entries (kept
// only for stale-if-error), the longest expired first; then fresh ones, the
// one loaded longest ago first. Load order, not expiry, ranks fresh entries
// because the members' TTLs differ: a summary loaded a second ago (60s
// TTL) expires before a past series loaded nine minutes ago (10m TTL), and
// ranking by expiry would let a flood of past series evict every summary as
// soon as it is stored. The entry being stored is never the victim, so the
// newest value is kept. Hits are not tracked (they take no write lock), so
// a hot entry is as old as its last load.
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
	// oldest is the expiry and load time of the entry loaded longest ago,
	// which is also the one that expires first (one TTL per member); false
	// when empty.
	oldest() (expires, loaded time.Time, ok bool)
	// evictOldest drops that entry, subtracting its weight from the budget.
	evictOldest()
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

// reserve evicts until w more bytes fit, in the order described on Budget
// (now tells which entries have expired). Called with mu held and
// w <= max.
func (b *Budget) reserve(w int64, now time.Time) {
	for b.used.Load()+w > b.max {
		var victim member
		var vExpires, vLoaded time.Time
		for _, m := range b.members {
			expires, loaded, ok := m.oldest()
			if !ok {
				continue
			}
			expired, vExpired := !now.Before(expires), victim != nil && !now.Before(vExpires)
			switch {
			case victim == nil,
				expired && !vExpired,
				expired && vExpired && expires.Before(vExpires),
				!expired && !vExpired && loaded.Before(vLoaded):
				victim, vExpires, vLoaded = m, expires, loaded
			}
		}
		if victim == nil {
			return // nothing left to evict; cannot happen while used > 0
		}
		victim.evictOldest()
	}
}
