package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 2, 15, 10, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// loader is a scriptable LoadFunc that counts its calls.
type loader struct {
	calls atomic.Int64
	mu    sync.Mutex
	val   map[string]string
	err   error
}

func newLoader() *loader { return &loader{val: map[string]string{}} }

func (l *loader) set(key, v string) { l.mu.Lock(); l.val[key] = v; l.mu.Unlock() }
func (l *loader) fail(err error)    { l.mu.Lock(); l.err = err; l.mu.Unlock() }

func (l *loader) load(_ context.Context, key string) (string, error) {
	l.calls.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return "", l.err
	}
	v, ok := l.val[key]
	if !ok {
		return "", fmt.Errorf("key %q: %w", key, ErrNotFound)
	}
	return v, nil
}

func mustNew(tb testing.TB, load LoadFunc[string], opts Options) *Cache[string] {
	tb.Helper()
	c, err := New(load, opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return c
}

func mustGet(tb testing.TB, c *Cache[string], key string) Result[string] {
	tb.Helper()
	r, err := c.Get(context.Background(), key)
	if err != nil {
		tb.Fatalf("Get(%q): %v", key, err)
	}
	return r
}

func TestNewValidates(t *testing.T) {
	load := func(context.Context, string) (string, error) { return "", nil }
	tests := []struct {
		name string
		load LoadFunc[string]
		opts Options
		ok   bool
	}{
		{"defaults", load, Options{TTL: time.Second}, true},
		{"nil load", nil, Options{TTL: time.Second}, false},
		{"zero TTL", load, Options{}, false},
		{"negative stale", load, Options{TTL: time.Second, StaleMax: -1}, false},
		{"negative size", load, Options{TTL: time.Second, MaxEntries: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.load, tt.opts)
			if (err == nil) != tt.ok {
				t.Fatalf("New err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestMissThenHitThenExpiry(t *testing.T) {
	clk := newFakeClock()
	l := newLoader()
	l.set("cpu", "v1")
	c := mustNew(t, l.load, Options{TTL: time.Minute, Now: clk.Now})

	steps := []struct {
		name    string
		advance time.Duration
		set     string // new backing value before the step ("" keeps it)
		want    string
		status  Status
		ttl     time.Duration
		loads   int64
	}{
		{"cold key is a miss", 0, "", "v1", Miss, time.Minute, 1},
		{"second get hits", 10 * time.Second, "", "v1", Hit, 50 * time.Second, 1},
		{"write after caching is not seen while fresh", 49 * time.Second, "v2", "v1", Hit, time.Second, 1},
		{"visible once the TTL passes", time.Second, "", "v2", Miss, time.Minute, 2},
		{"and cached again", time.Second, "", "v2", Hit, 59 * time.Second, 2},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if s.set != "" {
			l.set("cpu", s.set)
		}
		r := mustGet(t, c, "cpu")
		if r.Value != s.want || r.Status != s.status || r.TTL != s.ttl || l.calls.Load() != s.loads {
			t.Fatalf("%s: got (%q, %v, ttl %s, loads %d), want (%q, %v, ttl %s, loads %d)",
				s.name, r.Value, r.Status, r.TTL, l.calls.Load(), s.want, s.status, s.ttl, s.loads)
		}
	}
}

func TestNotFoundIsNeverCached(t *testing.T) {
	clk := newFakeClock()
	l := newLoader()
	c := mustNew(t, l.load, Options{TTL: time.Minute, StaleMax: time.Hour, Now: clk.Now})

	if _, err := c.Get(context.Background(), "cpu"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get on an absent key: err = %v, want ErrNotFound", err)
	}
	if c.Len() != 0 {
		t.Fatalf("Len after not found = %d, want 0", c.Len())
	}
	l.set("cpu", "v1")
	if r := mustGet(t, c, "cpu"); r.Status != Miss || r.Value != "v1" {
		t.Fatalf("after the key appeared: %+v, want a miss with v1", r)
	}

	// Not found is authoritative: it drops the stale entry too.
	clk.Advance(2 * time.Minute)
	l.mu.Lock()
	delete(l.val, "cpu")
	l.mu.Unlock()
	if _, err := c.Get(context.Background(), "cpu"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after deletion: err = %v, want ErrNotFound", err)
	}
	if c.Len() != 0 {
		t.Fatalf("Len after deletion = %d, want 0", c.Len())
	}
}

func TestStaleIfError(t *testing.T) {
	errDown := errors.New("redis down")
	tests := []struct {
		name      string
		staleMax  time.Duration
		advance   time.Duration
		wantStale bool
		wantTTL   time.Duration
	}{
		{"just expired", 10 * time.Minute, time.Minute, true, 0},
		{"well within the stale window", 10 * time.Minute, 5 * time.Minute, true, -4 * time.Minute},
		{"at the end of the window", 10 * time.Minute, 11 * time.Minute, false, 0},
		{"stale disabled", 0, time.Minute + time.Second, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			l := newLoader()
			l.set("cpu", "v1")
			c := mustNew(t, l.load, Options{TTL: time.Minute, StaleMax: tt.staleMax, Now: clk.Now})
			mustGet(t, c, "cpu")
			clk.Advance(tt.advance)
			l.fail(errDown)

			r, err := c.Get(context.Background(), "cpu")
			if !tt.wantStale {
				if !errors.Is(err, errDown) {
					t.Fatalf("Get = (%+v, %v), want the load error", r, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get: %v, want a stale value", err)
			}
			if r.Status != Stale || r.Value != "v1" || r.TTL != tt.wantTTL || !errors.Is(r.Err, errDown) {
				t.Fatalf("Get = %+v, want stale v1 with TTL %s and the load error", r, tt.wantTTL)
			}
			// Once the store is back the next get loads again.
			l.fail(nil)
			l.set("cpu", "v2")
			if r := mustGet(t, c, "cpu"); r.Status != Miss || r.Value != "v2" {
				t.Fatalf("after recovery: %+v, want a miss with v2", r)
			}
		})
	}
}

func TestBoundedEvictsSoonestExpiry(t *testing.T) {
	clk := newFakeClock()
	l := newLoader()
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		l.set(k, "v-"+k)
	}
	c := mustNew(t, l.load, Options{TTL: time.Minute, MaxEntries: 3, Now: clk.Now})

	for _, k := range []string{"a", "b", "c"} {
		mustGet(t, c, k)
		clk.Advance(time.Second)
	}
	// Refresh a: it now expires last, so b is the soonest to expire.
	clk.Advance(time.Minute)
	mustGet(t, c, "a")
	mustGet(t, c, "d") // evicts b
	if c.Len() != 3 {
		t.Fatalf("Len = %d, want 3", c.Len())
	}
	loads := l.calls.Load()
	for _, k := range []string{"a", "d"} {
		if r := mustGet(t, c, k); r.Status != Hit {
			t.Fatalf("%s: %v, want a hit", k, r.Status)
		}
	}
	if got := l.calls.Load(); got != loads {
		t.Fatalf("hits loaded %d times", got-loads)
	}
	mustGet(t, c, "b")
	if got := l.calls.Load(); got != loads+1 {
		t.Fatalf("b was not evicted: loads %d, want %d", got, loads+1)
	}

	for i := range 1000 {
		k := fmt.Sprintf("k%d", i)
		l.set(k, k)
		mustGet(t, c, k)
	}
	if c.Len() != 3 {
		t.Fatalf("Len after 1000 keys = %d, want 3", c.Len())
	}
}

func TestConcurrentMissesShareOneLoad(t *testing.T) {
	const callers = 100
	release := make(chan struct{})
	var loads atomic.Int64
	load := func(ctx context.Context, key string) (string, error) {
		loads.Add(1)
		<-release
		return "v-" + key, nil
	}
	c := mustNew(t, load, Options{TTL: time.Minute, Now: newFakeClock().Now})

	var wg sync.WaitGroup
	results := make([]Result[string], callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { results[i], errs[i] = c.Get(context.Background(), "cpu") })
	}
	time.Sleep(20 * time.Millisecond) // let most callers join the flight (not required for correctness)
	close(release)
	wg.Wait()

	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads for %d concurrent callers, want 1", n, callers)
	}
	for i := range callers {
		if errs[i] != nil || results[i].Value != "v-cpu" {
			t.Fatalf("caller %d: (%+v, %v)", i, results[i], errs[i])
		}
	}
}

func TestCancelledFirstCallerDoesNotFailOthers(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	loadErr := make(chan error, 1)
	load := func(ctx context.Context, key string) (string, error) {
		close(started)
		<-release
		loadErr <- ctx.Err()
		return "v1", nil
	}
	c := mustNew(t, load, Options{TTL: time.Minute, LoadTimeout: 10 * time.Second, Now: newFakeClock().Now})

	ctx1, cancel1 := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx1, "cpu")
		first <- err
	}()
	<-started

	second := make(chan Result[string], 1)
	secondErr := make(chan error, 1)
	go func() {
		r, err := c.Get(context.Background(), "cpu")
		second <- r
		secondErr <- err
	}()

	cancel1()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: err = %v, want context.Canceled", err)
	}
	close(release)
	if err := <-loadErr; err != nil {
		t.Fatalf("the load's context ended with the first caller: %v", err)
	}
	r, err := <-second, <-secondErr
	if err != nil || r.Value != "v1" {
		t.Fatalf("second caller: (%+v, %v), want v1", r, err)
	}
	// The value was stored although the caller that started the load left.
	if r := mustGet(t, c, "cpu"); r.Status != Hit {
		t.Fatalf("after the load: %v, want a hit", r.Status)
	}
}

func TestLoadTimeout(t *testing.T) {
	load := func(ctx context.Context, key string) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	}
	c := mustNew(t, load, Options{TTL: time.Minute, LoadTimeout: 20 * time.Millisecond})
	if _, err := c.Get(context.Background(), "cpu"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded from the load timeout", err)
	}
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{Miss: "MISS", Hit: "HIT", Stale: "STALE", 9: "Status(9)"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), want)
		}
	}
}

func BenchmarkGetHit(b *testing.B) {
	c := mustNew(b, func(context.Context, string) (string, error) { return "v", nil },
		Options{TTL: time.Hour})
	ctx := context.Background()
	mustGet(b, c, "cpu_usage")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r, err := c.Get(ctx, "cpu_usage"); err != nil || r.Status != Hit {
				b.Errorf("Get = (%v, %v)", r.Status, err)
				return
			}
		}
	})
}
