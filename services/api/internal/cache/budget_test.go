package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// weightOf is what an entry of key holding a string of n bytes weighs.
func weightOf(key string, n int) int64 { return int64(len(key)+n) + EntryOverhead }

func mustBudget(tb testing.TB, maxBytes int64) *Budget {
	tb.Helper()
	b, err := NewBudget(maxBytes)
	if err != nil {
		tb.Fatalf("NewBudget(%d): %v", maxBytes, err)
	}
	return b
}

// has peeks without loading or touching the entry.
func (c *Cache[V]) has(key string) bool {
	_, ok := c.lookup(key)
	return ok
}

// checkAccounting fails unless every member's Bytes is the sum of its
// entries' weights, the budget's is the sum of its members' and within Max.
func checkAccounting(tb testing.TB, b *Budget, caches ...*Cache[string]) {
	tb.Helper()
	var total int64
	for i, c := range caches {
		c.mu.RLock()
		var sum int64
		for el := c.order.Front(); el != nil; el = el.Next() {
			e := el.Value.(*entry[string])
			if e.weight != weightOf(e.key, len(e.value)) {
				tb.Errorf("cache %d: %q weighs %d, want %d", i, e.key, e.weight, weightOf(e.key, len(e.value)))
			}
			sum += e.weight
		}
		if len(c.items) != c.order.Len() {
			tb.Errorf("cache %d: %d items but %d in order", i, len(c.items), c.order.Len())
		}
		c.mu.RUnlock()
		if c.Bytes() != sum {
			tb.Errorf("cache %d: Bytes() = %d, entries weigh %d", i, c.Bytes(), sum)
		}
		total += sum
	}
	if b.Bytes() != total {
		tb.Errorf("budget Bytes() = %d, members hold %d", b.Bytes(), total)
	}
	if b.Bytes() > b.Max() {
		tb.Errorf("budget Bytes() = %d > Max() %d", b.Bytes(), b.Max())
	}
}

func TestNewBudgetValidates(t *testing.T) {
	tests := []struct {
		max      int64
		ok       bool
		maxEntry int64
	}{
		{-1, false, 0},
		{0, false, 0},
		{1, true, 1},
		{3, true, 1},
		{4096, true, 1024},
		{DefaultMaxBytes, true, DefaultMaxBytes / 4},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.max), func(t *testing.T) {
			b, err := NewBudget(tt.max)
			if (err == nil) != tt.ok {
				t.Fatalf("NewBudget(%d) err = %v, want ok=%v", tt.max, err, tt.ok)
			}
			if tt.ok && (b.Max() != tt.max || b.MaxEntry() != tt.maxEntry || b.Bytes() != 0) {
				t.Fatalf("Max %d MaxEntry %d Bytes %d, want %d %d 0", b.Max(), b.MaxEntry(), b.Bytes(), tt.max, tt.maxEntry)
			}
		})
	}
}

func TestWeighRequiredForOtherValues(t *testing.T) {
	load := func(context.Context, string) ([]int, error) { return []int{1, 2}, nil }
	if _, err := New(load, Options{TTL: time.Second}); err == nil {
		t.Fatal("New of []int values without a weigh function: no error")
	}
	c, err := NewWeighed(load, func(v []int) int64 { return int64(8 * cap(v)) }, Options{TTL: time.Second})
	if err != nil {
		t.Fatalf("NewWeighed: %v", err)
	}
	if _, err := c.Get(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	if want := int64(1+16) + EntryOverhead; c.Bytes() != want || c.Budget().Bytes() != want {
		t.Fatalf("Bytes = %d, budget %d, want %d", c.Bytes(), c.Budget().Bytes(), want)
	}
}

func TestByteBudgetEvictsOldest(t *testing.T) {
	// Keys k00..k99 with 100-byte values: every entry weighs the same, so
	// the budget holds exactly `fits` of them.
	const size = 100
	one := weightOf("k00", size)
	tests := []struct {
		name    string
		fits    int64 // budget = fits entries
		sizes   []int // value sizes, stored in this order as k00, k01, ...
		kept    []string
		evicted []string
		// notStored: keys served but never kept (heavier than MaxEntry).
		notStored []string
	}{
		{name: "under the budget keeps all", fits: 4, sizes: []int{size, size, size},
			kept: []string{"k00", "k01", "k02"}},
		{name: "at the budget keeps all", fits: 4, sizes: []int{size, size, size, size},
			kept: []string{"k00", "k01", "k02", "k03"}},
		{name: "one past the budget evicts the oldest", fits: 4, sizes: []int{size, size, size, size, size},
			kept: []string{"k01", "k02", "k03", "k04"}, evicted: []string{"k00"}},
		{name: "far past the budget keeps the newest", fits: 4, sizes: []int{size, size, size, size, size, size, size, size, size, size},
			kept: []string{"k06", "k07", "k08", "k09"}, evicted: []string{"k00", "k01", "k02", "k03", "k04", "k05"}},
		{name: "a heavy entry evicts as many as it needs", fits: 8, sizes: []int{size, size, size, size, size, size, size, size, int(one) + size},
			kept: []string{"k02", "k03", "k04", "k05", "k06", "k07", "k08"}, evicted: []string{"k00", "k01"}},
		{name: "an entry of exactly MaxEntry is stored", fits: 4, sizes: []int{size, size, size, size, size},
			kept: []string{"k01", "k02", "k03", "k04"}, evicted: []string{"k00"}},
		{name: "one byte past MaxEntry is served, not stored", fits: 4, sizes: []int{size, size, size + 1, size},
			kept: []string{"k00", "k01", "k03"}, notStored: []string{"k02"}},
		{name: "budget smaller than one entry stores nothing", fits: 1, sizes: []int{size, size},
			notStored: []string{"k00", "k01"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			l := newLoader()
			b := mustBudget(t, tt.fits*one)
			c := mustNew(t, l.load, Options{TTL: time.Minute, Now: clk.Now, Budget: b})
			for i, n := range tt.sizes {
				k := fmt.Sprintf("k%02d", i)
				l.set(k, strings.Repeat("x", n))
				r := mustGet(t, c, k)
				if r.Status != Miss || len(r.Value) != n {
					t.Fatalf("%s: %v with %d bytes, want a miss with %d", k, r.Status, len(r.Value), n)
				}
				checkAccounting(t, b, c)
				clk.Advance(time.Second)
			}
			for _, k := range tt.evicted {
				if c.has(k) {
					t.Errorf("%s kept, want evicted", k)
				}
			}
			var want int64
			for _, k := range tt.kept {
				if !c.has(k) {
					t.Errorf("%s evicted, want kept", k)
				}
				e, _ := c.lookup(k)
				want += e.weight
			}
			if c.Len() != len(tt.kept) || b.Bytes() != want {
				t.Fatalf("Len %d Bytes %d, want %d entries of %d bytes", c.Len(), b.Bytes(), len(tt.kept), want)
			}
			loads := l.calls.Load()
			for _, k := range tt.kept {
				if r := mustGet(t, c, k); r.Status != Hit {
					t.Errorf("%s: %v, want a hit", k, r.Status)
				}
			}
			if l.calls.Load() != loads {
				t.Fatalf("hits of kept entries loaded %d times", l.calls.Load()-loads)
			}
			for _, k := range tt.notStored {
				r := mustGet(t, c, k)
				if r.Status != Miss || !r.NotStored || c.has(k) {
					t.Errorf("%s: %v NotStored=%v held=%v, want a miss, not stored", k, r.Status, r.NotStored, c.has(k))
				}
			}
			checkAccounting(t, b, c)
		})
	}
}

func TestSharedBudgetAcrossCaches(t *testing.T) {
	const size = 100
	one := weightOf("k0", size)
	clk := newFakeClock()
	l := newLoader()
	for i := range 10 {
		l.set(fmt.Sprintf("k%d", i), strings.Repeat("x", size))
	}
	b := mustBudget(t, 4*one)
	long := mustNew(t, l.load, Options{TTL: 10 * time.Minute, StaleMax: time.Hour, Now: clk.Now, Budget: b})
	short := mustNew(t, l.load, Options{TTL: time.Minute, StaleMax: time.Hour, Now: clk.Now, Budget: b})

	steps := []struct {
		name        string
		advance     time.Duration
		cache       *Cache[string]
		key         string
		long, short []string // held after the step
	}{
		{"long k0", 0, long, "k0", []string{"k0"}, nil},
		{"long k1", time.Second, long, "k1", []string{"k0", "k1"}, nil},
		{"short k2", time.Second, short, "k2", []string{"k0", "k1"}, []string{"k2"}},
		{"short k3 fills the budget", time.Second, short, "k3", []string{"k0", "k1"}, []string{"k2", "k3"}},
		// k2 expires first (in 1m, k0 in 10m), but k0 was loaded first: the
		// budget ranks fresh entries by age, whichever cache holds them.
		{"short k4 evicts the other cache's oldest", time.Second, short, "k4", []string{"k1"}, []string{"k2", "k3", "k4"}},
		// Two minutes on, k2..k4 have expired (kept for stale-if-error): they
		// go before the fresh k1 although k1 was loaded earlier, the longest
		// expired first.
		{"expired go before fresh", 2 * time.Minute, long, "k5", []string{"k1", "k5"}, []string{"k3", "k4"}},
		{"then the next expired", time.Second, long, "k6", []string{"k1", "k5", "k6"}, []string{"k4"}},
		{"short k7 evicts the last expired", time.Second, short, "k7", []string{"k1", "k5", "k6"}, []string{"k7"}},
		// Nothing expired: k1 (loaded at 1s) goes, then k5 although the fresh
		// k7 expires sooner.
		{"oldest fresh goes", time.Second, short, "k8", []string{"k5", "k6"}, []string{"k7", "k8"}},
		{"oldest fresh goes, not the soonest expiring", time.Second, short, "k9", []string{"k6"}, []string{"k7", "k8", "k9"}},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if r := mustGet(t, s.cache, s.key); r.Status != Miss {
			t.Fatalf("%s: %v, want a miss", s.name, r.Status)
		}
		for _, side := range []struct {
			c    *Cache[string]
			want []string
		}{{long, s.long}, {short, s.short}} {
			if side.c.Len() != len(side.want) {
				t.Errorf("%s: Len %d, want %v", s.name, side.c.Len(), side.want)
			}
			for _, k := range side.want {
				if !side.c.has(k) {
					t.Errorf("%s: %s evicted, want kept", s.name, k)
				}
			}
		}
		checkAccounting(t, b, long, short)
		if t.Failed() {
			t.FailNow()
		}
	}
}

func TestAccountingFollowsReplaceAndRemove(t *testing.T) {
	clk := newFakeClock()
	l := newLoader()
	b := mustBudget(t, 1<<20)
	c := mustNew(t, l.load, Options{TTL: time.Minute, Now: clk.Now, Budget: b})

	steps := []struct {
		name  string
		value string // "" deletes the key from the backing store
		bytes int64
	}{
		{"stored", "abc", weightOf("cpu", 3)},
		{"replaced by a larger value", strings.Repeat("y", 1000), weightOf("cpu", 1000)},
		{"replaced by a smaller value", "z", weightOf("cpu", 1)},
		{"not found drops it", "", 0},
		{"stored again", "abcd", weightOf("cpu", 4)},
		{"too heavy drops the older value", strings.Repeat("w", int(b.MaxEntry())), 0},
	}
	for _, s := range steps {
		if s.value == "" {
			l.mu.Lock()
			delete(l.val, "cpu")
			l.mu.Unlock()
		} else {
			l.set("cpu", s.value)
		}
		_, err := c.Get(context.Background(), "cpu")
		if s.value == "" && !errors.Is(err, ErrNotFound) || s.value != "" && err != nil {
			t.Fatalf("%s: err %v", s.name, err)
		}
		if c.Bytes() != s.bytes || b.Bytes() != s.bytes {
			t.Fatalf("%s: Bytes %d, budget %d, want %d", s.name, c.Bytes(), b.Bytes(), s.bytes)
		}
		checkAccounting(t, b, c)
		clk.Advance(2 * time.Minute) // expire, so the next Get loads
	}
}

func TestEntriesBoundStillApplies(t *testing.T) {
	clk := newFakeClock()
	l := newLoader()
	b := mustBudget(t, 1<<20)
	c := mustNew(t, l.load, Options{TTL: time.Minute, MaxEntries: 3, Now: clk.Now, Budget: b})
	for i := range 10 {
		k := fmt.Sprintf("k%d", i)
		l.set(k, k)
		mustGet(t, c, k)
		clk.Advance(time.Second)
	}
	if c.Len() != 3 || b.Bytes() != 3*weightOf("k0", 2) {
		t.Fatalf("Len %d Bytes %d, want 3 entries of %d bytes", c.Len(), b.Bytes(), weightOf("k0", 2))
	}
	checkAccounting(t, b, c)
}

// TestSharedBudgetConcurrent stores into two caches of one budget from many
// goroutines (run with -race): the accounting stays exact and within Max.
func TestSharedBudgetConcurrent(t *testing.T) {
	b := mustBudget(t, 50*weightOf("k0000", 100))
	load := func(_ context.Context, key string) (string, error) {
		if strings.HasSuffix(key, "7") {
			return "", ErrNotFound // removals race with stores too
		}
		return strings.Repeat("v", 100), nil
	}
	clk := newFakeClock()
	a := mustNew(t, load, Options{TTL: time.Minute, Now: clk.Now, Budget: b})
	z := mustNew(t, load, Options{TTL: 10 * time.Minute, Now: clk.Now, Budget: b})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				c := a
				if (g+i)%2 == 0 {
					c = z
				}
				_, _ = c.Get(context.Background(), fmt.Sprintf("k%04d", (g*131+i)%2000))
				if i%50 == 0 {
					clk.Advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
	checkAccounting(t, b, a, z)
	if b.Bytes() == 0 {
		t.Fatal("nothing stored")
	}
}
