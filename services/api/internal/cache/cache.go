// Package cache is a bounded in-process TTL cache that loads missing keys
// through golang.org/x/sync/singleflight and serves expired entries when a
// load fails (stale-if-error).
//
// Semantics:
//
//   - Fresh entries (younger than TTL) are hits, served under a read lock
//     without allocating.
//   - On a miss, any number of concurrent callers for one key share one load
//     (singleflight). The loaded value is stored inside that shared call, so
//     callers arriving after it finished hit; and the call first re-checks
//     the cache, so a caller that missed just before a load finished does
//     not start a second one.
//   - The load runs on context.WithoutCancel(first caller's ctx) with its
//     own LoadTimeout: the values (request id, trace) flow through, but one
//     caller going away does not cancel the load for the others. A caller
//     whose own context ends stops waiting and gets its ctx.Err().
//   - A load that fails with ErrNotFound is never cached (and drops any
//     entry for the key: not found is an authoritative answer).
//   - Any other load error serves the expired entry if it expired less than
//     StaleMax ago (Status Stale, negative TTL, the error in Result.Err);
//     otherwise the error is returned.
//   - At most MaxEntries entries are kept. Storing into a full cache evicts
//     the entry that expires first. All entries share one TTL, so that is
//     the entry loaded longest ago: expired (stale-only) entries go before
//     fresh ones, and a hit does not need the write lock that LRU
//     bookkeeping would take. Entries past their stale window are dropped
//     when their key is next loaded or when evicted.
//   - Entries are also bounded in bytes, by a Budget that several caches
//     may share (the api's CACHE_MAX_BYTES): storing evicts, across all of
//     them, expired entries first, then the ones loaded longest ago, until
//     the new one fits; an entry heavier than Budget.MaxEntry is served but
//     not stored. See Budget.
//   - Time comes from Options.Now so tests control expiry without sleeping.
package cache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// ErrNotFound is what a LoadFunc returns (or wraps) when the key does not
// exist. It is passed through to the caller and never cached.
var ErrNotFound = errors.New("cache: not found")

// Status says where a Get result came from.
type Status uint8

const (
	// Miss: the value was loaded for this call (possibly shared with
	// concurrent callers, see Result.Collapsed).
	Miss Status = iota
	// Hit: a fresh cached value.
	Hit
	// Stale: an expired value served because the load failed.
	Stale
)

func (s Status) String() string {
	switch s {
	case Miss:
		return "MISS"
	case Hit:
		return "HIT"
	case Stale:
		return "STALE"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// LoadFunc reads the value of key from the backing store. It returns
// ErrNotFound (possibly wrapped) when the key does not exist.
type LoadFunc[V any] func(ctx context.Context, key string) (V, error)

// Options configure a Cache. Zero values other than TTL get defaults.
type Options struct {
	// TTL is how long a loaded value is fresh. Required (> 0).
	TTL time.Duration
	// StaleMax is how long past its TTL an entry may still be served when a
	// load fails. 0 disables stale-if-error.
	StaleMax time.Duration
	// MaxEntries bounds the number of entries (default 10000).
	MaxEntries int
	// LoadTimeout bounds one load (default 2s).
	LoadTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Budget bounds the bytes of this cache's entries together with the
	// other caches sharing it (default: a budget of its own of
	// DefaultMaxBytes).
	Budget *Budget
}

// Result is the answer of Get.
type Result[V any] struct {
	// Value is the cached or loaded value.
	Value V
	// Status is Hit, Miss or Stale.
	Status Status
	// TTL is the remaining freshness: TTL after a load, less for a hit, and
	// negative for a stale value (how long ago it expired).
	TTL time.Duration
	// Collapsed reports that this caller shared its load with other callers.
	Collapsed bool
	// NotStored reports a loaded value that was served but not kept: it
	// weighs more than the budget's MaxEntry.
	NotStored bool
	// Err is the load error that made a Stale value be served (nil otherwise).
	Err error
}

// Cache is a bounded TTL cache of values of type V keyed by string. It is
// safe for concurrent use.
type Cache[V any] struct {
	load   LoadFunc[V]
	weigh  func(V) int64
	opts   Options
	budget *Budget
	bytes  atomic.Int64 // written under budget.mu

	mu    sync.RWMutex
	items map[string]*list.Element // of *entry[V]
	order *list.List               // by expiry, soonest first

	flights singleflight.Group
}

type entry[V any] struct {
	key     string
	value   V
	expires time.Time
	weight  int64
}

// flight is what one shared load hands to its callers.
type flight[V any] struct {
	value     V
	expires   time.Time
	status    Status // Miss, or Hit when the re-check found a fresh entry, or Stale
	err       error  // load error behind a Stale value
	notStored bool
}

// New returns a cache that loads misses with load. V must be []byte or
// string, weighed by their size; other values need NewWeighed.
func New[V any](load LoadFunc[V], opts Options) (*Cache[V], error) {
	return NewWeighed(load, nil, opts)
}

// NewWeighed is New with weigh telling the bytes a value holds beyond the
// entry itself (for a slice: its backing array and what its elements point
// to). A nil weigh weighs []byte and string values by their size.
func NewWeighed[V any](load LoadFunc[V], weigh func(V) int64, opts Options) (*Cache[V], error) {
	if load == nil {
		return nil, errors.New("cache: nil LoadFunc")
	}
	if weigh == nil {
		var zero V
		switch any(zero).(type) {
		case []byte:
			weigh = func(v V) int64 { return int64(cap(any(v).([]byte))) }
		case string:
			weigh = func(v V) int64 { return int64(len(any(v).(string))) }
		default:
			return nil, fmt.Errorf("cache: values of type %T need a weigh function", zero)
		}
	}
	if opts.TTL <= 0 {
		return nil, fmt.Errorf("cache: TTL must be > 0, got %s", opts.TTL)
	}
	if opts.StaleMax < 0 {
		return nil, fmt.Errorf("cache: StaleMax must be >= 0, got %s", opts.StaleMax)
	}
	if opts.MaxEntries == 0 {
		opts.MaxEntries = 10000
	}
	if opts.MaxEntries < 0 {
		return nil, fmt.Errorf("cache: MaxEntries must be > 0, got %d", opts.MaxEntries)
	}
	if opts.LoadTimeout <= 0 {
		opts.LoadTimeout = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	b := opts.Budget
	if b == nil {
		b, _ = NewBudget(DefaultMaxBytes)
	}
	c := &Cache[V]{
		load:   load,
		weigh:  weigh,
		opts:   opts,
		budget: b,
		items:  make(map[string]*list.Element),
		order:  list.New(),
	}
	b.join(c)
	return c, nil
}

// Get returns the value of key: from the cache when fresh, else loaded
// (once for all concurrent callers), else stale when the load failed and an
// entry expired less than StaleMax ago. Errors are the load's (ErrNotFound
// included) or ctx's when the caller stopped waiting.
func (c *Cache[V]) Get(ctx context.Context, key string) (Result[V], error) {
	now := c.opts.Now()
	c.mu.RLock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*entry[V])
		if now.Before(e.expires) {
			r := Result[V]{Value: e.value, Status: Hit, TTL: e.expires.Sub(now)}
			c.mu.RUnlock()
			return r, nil
		}
	}
	c.mu.RUnlock()

	ch := c.flights.DoChan(key, func() (any, error) { return c.fill(ctx, key) })
	select {
	case res := <-ch:
		if res.Err != nil {
			return Result[V]{}, res.Err
		}
		f := res.Val.(flight[V])
		return Result[V]{
			Value:     f.value,
			Status:    f.status,
			TTL:       f.expires.Sub(c.opts.Now()),
			Collapsed: res.Shared,
			NotStored: f.notStored,
			Err:       f.err,
		}, nil
	case <-ctx.Done():
		return Result[V]{}, ctx.Err()
	}
}

// fill runs once per flight: re-check, load on a detached context, store.
func (c *Cache[V]) fill(ctx context.Context, key string) (any, error) {
	if e, ok := c.lookup(key); ok && c.opts.Now().Before(e.expires) {
		return flight[V]{value: e.value, expires: e.expires, status: Hit}, nil
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.LoadTimeout)
	defer cancel()
	v, err := c.load(lctx, key)
	now := c.opts.Now()
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			c.remove(key)
			return nil, err
		}
		if e, ok := c.lookup(key); ok {
			if now.Before(e.expires.Add(c.opts.StaleMax)) {
				return flight[V]{value: e.value, expires: e.expires, status: Stale, err: err}, nil
			}
			c.remove(key) // past its stale window: useless
		}
		return nil, err
	}
	expires := now.Add(c.opts.TTL)
	stored := c.store(key, v, now)
	return flight[V]{value: v, expires: expires, status: Miss, notStored: !stored}, nil
}

func (c *Cache[V]) lookup(key string) (entry[V], bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if el, ok := c.items[key]; ok {
		return *el.Value.(*entry[V]), true
	}
	return entry[V]{}, false
}

// store keeps v, loaded at now, for key unless it weighs more than the
// budget's MaxEntry (then key holds nothing: its older value is dropped
// too). It evicts this cache's soonest-expiring entries past MaxEntries
// and, through the budget, any member's until v fits.
func (c *Cache[V]) store(key string, v V, now time.Time) bool {
	expires := now.Add(c.opts.TTL)
	w := int64(len(key)) + c.weigh(v) + EntryOverhead
	b := c.budget
	b.mu.Lock()
	defer b.mu.Unlock()

	c.mu.Lock()
	if el, ok := c.items[key]; ok {
		c.unlink(el)
	}
	if w > b.maxEntry {
		c.mu.Unlock()
		return false
	}
	for c.order.Len() >= c.opts.MaxEntries {
		c.unlink(c.order.Front())
	}
	c.mu.Unlock()

	b.reserve(w, now)

	c.mu.Lock()
	c.items[key] = c.order.PushBack(&entry[V]{key: key, value: v, expires: expires, weight: w})
	c.mu.Unlock()
	c.bytes.Add(w)
	b.used.Add(w)
	return true
}

// unlink drops el and its weight. Called with budget.mu and c.mu held.
func (c *Cache[V]) unlink(el *list.Element) {
	e := el.Value.(*entry[V])
	c.order.Remove(el)
	delete(c.items, e.key)
	c.bytes.Add(-e.weight)
	c.budget.used.Add(-e.weight)
}

func (c *Cache[V]) remove(key string) {
	c.budget.mu.Lock()
	defer c.budget.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.unlink(el)
	}
}

func (c *Cache[V]) oldest() (expires, loaded time.Time, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if front := c.order.Front(); front != nil {
		expires = front.Value.(*entry[V]).expires
		return expires, expires.Add(-c.opts.TTL), true
	}
	return time.Time{}, time.Time{}, false
}

func (c *Cache[V]) evictOldest() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if front := c.order.Front(); front != nil {
		c.unlink(front)
	}
}

// Bytes is the weight of this cache's entries (see Budget).
func (c *Cache[V]) Bytes() int64 { return c.bytes.Load() }

// Budget is the byte budget this cache shares.
func (c *Cache[V]) Budget() *Budget { return c.budget }

// Len is the number of entries held, fresh or stale.
func (c *Cache[V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.items)
}
