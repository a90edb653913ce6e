package ingest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/internal/ingest"
)

func metrics(n int, typ string) []metric.Metric {
	out := make([]metric.Metric, n)
	for i := range out {
		out[i] = metric.Metric{Timestamp: time.Unix(1771149600, 0).UTC(), Value: float64(i), Type: typ}
	}
	return out
}

// serviceStore is the store over the client the api uses (no retries, 1s
// timeouts) for url; the client closes when the test ends.
func serviceStore(tb testing.TB, url string) *store.Store {
	tb.Helper()
	rdb, err := redisclient.New(redisclient.Config{URL: url, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = rdb.Close() })
	st, err := store.New(rdb, "", 1)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// fakeBatch is a BatchAppender that records each AppendMany and can hold
// it until released, so a test sees requests queue behind a call in
// flight.
type fakeBatch struct {
	st      *store.Store // only builds calls; never sends
	mu      sync.Mutex
	batches []int
	hold    chan struct{}
	entered chan struct{}
}

func (f *fakeBatch) NewAppendCall(client string, limit store.Limit, ms []metric.Metric, idem store.Idempotency) *store.AppendCall {
	return f.st.NewAppendCall(client, limit, ms, idem)
}

func (f *fakeBatch) AppendMany(_ context.Context, calls []*store.AppendCall) {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.hold != nil {
		<-f.hold
	}
	f.mu.Lock()
	f.batches = append(f.batches, len(calls))
	f.mu.Unlock()
	for i, c := range calls {
		c.Result = store.AppendResult{Allowed: true, Count: -1, IDs: []string{"1-" + string(rune('0'+i%10))}}
	}
}

func newFake(t *testing.T) *fakeBatch {
	t.Helper()
	srv := redistest.Start(t) // the client is never used: the fake never sends
	st := serviceStore(t, srv.URL())
	return &fakeBatch{st: st}
}

// While one AppendMany is in flight, the requests that arrive queue up and
// the next AppendMany carries all of them: that is the whole point.
func TestCoalescerBatchesRequestsQueuedBehindACallInFlight(t *testing.T) {
	f := newFake(t)
	f.hold, f.entered = make(chan struct{}), make(chan struct{}, 1)
	c := ingest.NewCoalescer(f, ingest.CoalescerOptions{})
	defer c.Close()
	ctx := context.Background()
	first := make(chan error, 1)
	go func() {
		_, err := c.Append(ctx, "a", store.Limit{}, metrics(1, "t"), store.Idempotency{})
		first <- err
	}()
	<-f.entered // the first call is in flight and held
	const queued = 20
	var wg sync.WaitGroup
	errs := make(chan error, queued)
	for range queued {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Append(ctx, "b", store.Limit{}, metrics(1, "t"), store.Idempotency{})
			if err == nil && len(res.IDs) != 1 {
				err = errors.New("no id")
			}
			errs <- err
		}()
	}
	// Let every request enqueue before the held call returns.
	deadline := time.Now().Add(5 * time.Second)
	for c.Queued() < queued && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	f.entered = nil
	close(f.hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.batches) != 2 || f.batches[0] != 1 || f.batches[1] != queued {
		t.Fatalf("batches %v, want [1 %d]", f.batches, queued)
	}
}

// A request whose client left before its call was sent is not sent.
func TestCoalescerDropsRequestsCancelledBeforeSending(t *testing.T) {
	f := newFake(t)
	f.hold, f.entered = make(chan struct{}), make(chan struct{}, 1)
	c := ingest.NewCoalescer(f, ingest.CoalescerOptions{})
	defer c.Close()
	go func() {
		_, _ = c.Append(context.Background(), "a", store.Limit{}, metrics(1, "t"), store.Idempotency{})
	}()
	<-f.entered
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Append(ctx, "b", store.Limit{}, metrics(1, "t"), store.Idempotency{})
		done <- err
	}()
	for c.Queued() < 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	f.entered = nil
	close(f.hold)
	time.Sleep(50 * time.Millisecond) // the flusher drains the cancelled call
	if _, err := c.Append(context.Background(), "c", store.Limit{}, metrics(1, "t"), store.Idempotency{}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.batches {
		if n != 1 {
			t.Fatalf("batches %v: the cancelled request was sent", f.batches)
		}
	}
}

// A request whose context ends while its call is in flight cannot know
// whether Redis stored it: outcome unknown, not "nothing was stored".
func TestCoalescerCancelledInFlightIsOutcomeUnknown(t *testing.T) {
	f := newFake(t)
	f.hold, f.entered = make(chan struct{}), make(chan struct{}, 1)
	c := ingest.NewCoalescer(f, ingest.CoalescerOptions{})
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Append(ctx, "a", store.Limit{}, metrics(1, "t"), store.Idempotency{})
		done <- err
	}()
	<-f.entered // the call is being sent
	cancel()
	err := <-done
	close(f.hold)
	if !errors.Is(err, store.ErrOutcomeUnknown) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown only", err)
	}
}

func TestCoalescerAppendAfterCloseFails(t *testing.T) {
	f := newFake(t)
	c := ingest.NewCoalescer(f, ingest.CoalescerOptions{})
	c.Close()
	c.Close() // twice is fine
	if _, err := c.Append(context.Background(), "c", store.Limit{}, metrics(1, "a"), store.Idempotency{}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

// Through real Redis: many concurrent requests of several clients, each
// with its own quota, coalesced: the quotas hold exactly and ids are never
// shared.
func TestCoalescedAppendsKeepQuotaAndOwnIDs(t *testing.T) {
	srv := redistest.Start(t)
	st := serviceStore(t, srv.URL())
	c := ingest.NewCoalescer(st, ingest.CoalescerOptions{})
	defer c.Close()
	const clients, perClient = 4, 25
	var mu sync.Mutex
	allowed := map[string]int{}
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for i := range clients {
		client := string(rune('a' + i))
		for range perClient {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := c.Append(context.Background(), client, store.Limit{Max: 10, Window: time.Minute}, metrics(2, "t"), store.Idempotency{})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("client %s: %v", client, err)
					return
				}
				if res.Allowed {
					allowed[client]++
				}
				for _, id := range res.IDs {
					if seen[id] {
						t.Errorf("id %s handed to two requests", id)
					}
					seen[id] = true
				}
			}()
		}
	}
	wg.Wait()
	for i := range clients {
		if got := allowed[string(rune('a'+i))]; got != 10 {
			t.Errorf("client %c: %d allowed, want exactly 10", 'a'+i, got)
		}
	}
	if n := srv.Client(t).XLen(context.Background(), st.Keys().Stream(0)).Val(); n != clients*10*2 {
		t.Fatalf("stream has %d entries, want %d", n, clients*10*2)
	}
}
