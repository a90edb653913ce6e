package store_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
)

// serviceStore is the store over the client the services use (no retries,
// 1s timeouts).
func serviceStore(tb testing.TB, url string, cluster bool, partitions int) *store.Store {
	tb.Helper()
	rdb, err := redisclient.New(redisclient.Config{URL: url, Cluster: cluster, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = rdb.Close() })
	st, err := store.New(rdb, "", partitions)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func metrics(n int, typ string) []metric.Metric {
	out := make([]metric.Metric, n)
	for i := range out {
		out[i] = metric.Metric{Timestamp: time.Unix(1771149600, 0).UTC(), Value: float64(i), Type: typ}
	}
	return out
}

// The fixed window, request by request, as the script decides it: the
// window starts at the first request, the count includes the request, a
// request over the quota stores nothing, and the limit is per client.
func TestAppendFixedWindow(t *testing.T) {
	srv := redistest.Start(t)
	st := serviceStore(t, srv.URL(), false, 1)
	rdb := srv.Client(t)
	ctx := context.Background()
	limit := store.Limit{Max: 3, Window: time.Minute}
	steps := []struct {
		client  string
		allowed bool
		count   int64
	}{
		{"a", true, 1}, {"a", true, 2}, {"b", true, 1}, {"a", true, 3}, {"a", false, 4}, {"a", false, 5}, {"b", true, 2},
	}
	stored := 0
	for i, s := range steps {
		res, err := st.Append(ctx, s.client, limit, metrics(2, "t"), store.Idempotency{})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if res.Allowed != s.allowed || res.Count != s.count {
			t.Fatalf("step %d (%s): allowed %t count %d, want %t %d", i, s.client, res.Allowed, res.Count, s.allowed, s.count)
		}
		if res.PTTL <= 0 || res.PTTL > time.Minute {
			t.Fatalf("step %d: pttl %s outside (0, 1m]", i, res.PTTL)
		}
		if s.allowed != (len(res.IDs) == 2) {
			t.Fatalf("step %d: %d ids", i, len(res.IDs))
		}
		if s.allowed {
			stored += 2
		}
	}
	if n := rdb.XLen(ctx, st.Keys().Stream(0)).Val(); n != int64(stored) {
		t.Fatalf("stream has %d entries, want %d", n, stored)
	}
	// A counter that lost its TTL is re-armed by the next request.
	key := st.Keys().RateLimit(0, "a")
	rdb.Persist(ctx, key)
	if _, err := st.Append(ctx, "a", limit, metrics(1, "t"), store.Idempotency{}); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 {
		t.Fatalf("counter without TTL after a request: %s", ttl)
	}
	// Off: nothing counted, always stored.
	res, err := st.Append(ctx, "c", store.Limit{}, metrics(1, "t"), store.Idempotency{})
	if err != nil || !res.Allowed || res.Count != -1 || len(res.IDs) != 1 {
		t.Fatalf("limit off: %+v %v", res, err)
	}
	if rdb.Exists(ctx, st.Keys().RateLimit(0, "c")).Val() != 0 {
		t.Fatal("limit off created a counter")
	}
}

// Requests with different quotas in one script call each get their own.
func TestAppendManyPerRequestLimits(t *testing.T) {
	srv := redistest.Start(t)
	st := serviceStore(t, srv.URL(), false, 1)
	ctx := context.Background()
	var calls []*store.AppendCall
	for i := range 6 {
		client, limit := "one", store.Limit{Max: 1, Window: time.Minute}
		if i%2 == 1 {
			client, limit = "five", store.Limit{Max: 5, Window: time.Minute}
		}
		calls = append(calls, st.NewAppendCall(client, limit, metrics(1, "t"), store.Idempotency{}))
	}
	st.AppendMany(ctx, calls)
	var allowed []bool
	for _, c := range calls {
		if c.Err != nil {
			t.Fatal(c.Err)
		}
		allowed = append(allowed, c.Result.Allowed)
	}
	want := []bool{true, true, false, true, false, true}
	if fmt.Sprint(allowed) != fmt.Sprint(want) {
		t.Fatalf("allowed %v, want %v", allowed, want)
	}
}

// Concurrent appends keep the quota exact and never share an id.
func TestConcurrentAppendsKeepQuotaAndOwnIDs(t *testing.T) {
	srv := redistest.Start(t)
	st := serviceStore(t, srv.URL(), false, 1)
	const clients, perClient = 4, 25
	var mu sync.Mutex
	allowed := map[string]int{}
	seen := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, clients*perClient)
	for c := range clients {
		client := string(rune('a' + c))
		for range perClient {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := st.Append(context.Background(), client, store.Limit{Max: 10, Window: time.Minute}, metrics(2, "t"+client), store.Idempotency{})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if res.Allowed {
					allowed[client]++
				}
				for _, id := range res.IDs {
					if seen[id] {
						errs <- fmt.Errorf("id %s handed out twice", id)
					}
					seen[id] = true
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for c := range clients {
		if got := allowed[string(rune('a'+c))]; got != 10 {
			t.Errorf("client %c: %d allowed, want exactly 10", 'a'+c, got)
		}
	}
	if n := srv.Client(t).XLen(context.Background(), st.Keys().Stream(0)).Val(); n != int64(len(seen)) || n != clients*10*2 {
		t.Fatalf("stream has %d entries, %d ids handed out, want %d", n, len(seen), clients*10*2)
	}
}

// After a Redis restart the script cache is empty: the append must still
// succeed (NOSCRIPT → EVAL), exactly once.
func TestAppendSurvivesScriptCacheFlush(t *testing.T) {
	srv := redistest.Start(t)
	st := serviceStore(t, srv.URL(), false, 1)
	ctx := context.Background()
	if _, err := st.Append(ctx, "c", store.Limit{}, metrics(1, "a"), store.Idempotency{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client(t).ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := st.Append(ctx, "c", store.Limit{}, metrics(3, "a"), store.Idempotency{})
	if err != nil || len(res.IDs) != 3 {
		t.Fatalf("after SCRIPT FLUSH: %v, %d ids", err, len(res.IDs))
	}
	if n := srv.Client(t).XLen(ctx, st.Keys().Stream(0)).Val(); n != 4 {
		t.Fatalf("stream has %d entries, want 4 (nothing doubled)", n)
	}
}

func TestAppendErrorWrapsUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	srv.RequireReal(t)
	st := serviceStore(t, srv.URL(), false, 1)
	srv.Kill(t)
	_, err := st.Append(context.Background(), "c", store.Limit{Max: 5, Window: time.Minute}, metrics(1, "a"), store.Idempotency{})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestPartitionIsStableAndSpreads(t *testing.T) {
	if p := store.PartitionOf("anything", 1); p != 0 {
		t.Fatalf("one partition: got %d", p)
	}
	counts := make([]int, 4)
	for i := range 4000 {
		client := "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
		p := store.PartitionOf(client, 4)
		if p != store.PartitionOf(client, 4) {
			t.Fatal("not deterministic")
		}
		counts[p]++
	}
	for p, n := range counts {
		if n < 800 || n > 1200 {
			t.Errorf("partition %d got %d of 4000 clients: %v", p, n, counts)
		}
	}
}

// On a Redis Cluster the calls for several partitions share one pipeline,
// which go-redis splits per node; after SCRIPT FLUSH on every node each
// node answers NOSCRIPT on its own and the EVAL re-send must reach each
// one. Every append succeeds exactly once, in its client's partition.
func TestClusterPipelinedAppendsAndNoScriptPerNode(t *testing.T) {
	c := redistest.StartCluster(t, 3, redistest.ClusterOptions{})
	const parts = 4
	st := serviceStore(t, c.URL(), true, parts)
	check := c.Client(t)
	ctx := context.Background()
	want := make([]int64, parts)
	for round := range 3 {
		if round > 0 {
			for _, a := range c.Addrs() {
				n := redis.NewClient(&redis.Options{Addr: a})
				if err := n.ScriptFlush(ctx).Err(); err != nil {
					t.Fatal(err)
				}
				n.Close()
			}
		}
		var calls []*store.AppendCall
		for i := range 64 {
			client := "client-" + strconv.Itoa(i)
			want[store.PartitionOf(client, parts)] += 2
			calls = append(calls, st.NewAppendCall(client, store.Limit{Max: 1000, Window: time.Minute}, metrics(2, "t"), store.Idempotency{}))
		}
		st.AppendMany(ctx, calls)
		for i, call := range calls {
			if call.Err != nil || len(call.Result.IDs) != 2 {
				t.Fatalf("round %d call %d: %v, %d ids", round, i, call.Err, len(call.Result.IDs))
			}
		}
	}
	for p := range parts {
		if n := check.XLen(ctx, st.Keys().Stream(p)).Val(); n != want[p] {
			t.Errorf("partition %d: %d entries, want %d", p, n, want[p])
		}
	}
}
