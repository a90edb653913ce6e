package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/keys"
	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/services/api/internal/ingest"
	"github.com/resilientanalytics/ra/services/api/internal/ratelimit"
)

func newStore(t *testing.T, srv *redistest.Server) *ingest.Store {
	t.Helper()
	rdb, err := redisclient.New(redisclient.Config{URL: srv.URL(), DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	store := ingest.NewStore(rdb, keys.New(""), 1)
	t.Cleanup(func() { store.Close(); rdb.Close() })
	return store
}

func metrics(n int, typ string) []metric.Metric {
	out := make([]metric.Metric, n)
	for i := range out {
		out[i] = metric.Metric{Timestamp: time.Unix(1771149600, 0).UTC(), Value: float64(i), Type: typ}
	}
	return out
}

// Concurrent requests are coalesced into shared script calls; each must
// still get its own decision and its own ids, and the quota must hold.
func TestConcurrentAppendsKeepQuotaAndOwnIDs(t *testing.T) {
	srv := redistest.Start(t)
	store := newStore(t, srv)
	policy := ratelimit.Policy{Max: 10, Window: time.Minute}
	const clients, perClient = 4, 25
	type outcome struct {
		client string
		ids    []string
		err    error
	}
	results := make(chan outcome, clients*perClient)
	var wg sync.WaitGroup
	for c := range clients {
		client := string(rune('a' + c))
		for range perClient {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := store.Append(context.Background(), client, policy, metrics(2, "t"+client))
				results <- outcome{client: client, ids: res.IDs, err: err}
			}()
		}
	}
	wg.Wait()
	close(results)
	allowed := map[string]int{}
	seen := map[string]bool{}
	for o := range results {
		switch {
		case errors.Is(o.err, ratelimit.ErrLimited):
		case o.err != nil:
			t.Fatalf("client %s: %v", o.client, o.err)
		default:
			allowed[o.client]++
			if len(o.ids) != 2 {
				t.Fatalf("client %s got %d ids for 2 metrics", o.client, len(o.ids))
			}
			for _, id := range o.ids {
				if seen[id] {
					t.Fatalf("id %s handed to two requests", id)
				}
				seen[id] = true
			}
		}
	}
	for c := range clients {
		if got := allowed[string(rune('a'+c))]; got != 10 {
			t.Errorf("client %c: %d requests allowed, want exactly 10", 'a'+c, got)
		}
	}
	n, _ := srv.Client(t).XLen(context.Background(), keys.New("").Stream(0)).Result()
	if n != int64(len(seen)) || n != clients*10*2 {
		t.Fatalf("stream has %d entries, %d ids handed out, want %d", n, len(seen), clients*10*2)
	}
}

// After a Redis restart the script cache is empty: the append must still
// succeed (NOSCRIPT → EVAL), exactly once.
func TestAppendSurvivesScriptCacheFlush(t *testing.T) {
	srv := redistest.Start(t)
	store := newStore(t, srv)
	ctx := context.Background()
	if _, err := store.Append(ctx, "c", ratelimit.Policy{}, metrics(1, "a")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client(t).ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := store.Append(ctx, "c", ratelimit.Policy{}, metrics(3, "a"))
	if err != nil || len(res.IDs) != 3 {
		t.Fatalf("after SCRIPT FLUSH: %v, %d ids", err, len(res.IDs))
	}
	if n, _ := srv.Client(t).XLen(ctx, keys.New("").Stream(0)).Result(); n != 4 {
		t.Fatalf("stream has %d entries, want 4 (nothing doubled)", n)
	}
}

func TestAppendAfterCloseFails(t *testing.T) {
	srv := redistest.Start(t)
	store := newStore(t, srv)
	store.Close()
	if _, err := store.Append(context.Background(), "c", ratelimit.Policy{}, metrics(1, "a")); !errors.Is(err, ingest.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestPartitionIsStableAndSpreads(t *testing.T) {
	if p := ingest.Partition("anything", 1); p != 0 {
		t.Fatalf("one partition: got %d", p)
	}
	counts := make([]int, 4)
	for i := range 4000 {
		client := "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
		p := ingest.Partition(client, 4)
		if p != ingest.Partition(client, 4) {
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

// On a Redis Cluster concurrent appends for several partitions share one
// pipeline, which go-redis splits per node; after SCRIPT FLUSH on every node
// each node answers NOSCRIPT on its own and the EVAL re-send must reach
// each one. Every append succeeds exactly once, in its client's partition.
func TestClusterPipelinedAppendsAndNoScriptPerNode(t *testing.T) {
	c := redistest.StartCluster(t, 3, redistest.ClusterOptions{})
	rdb, err := redisclient.New(redisclient.Config{URL: c.URL(), Cluster: true, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const parts = 4
	k := keys.New("")
	store := ingest.NewStore(rdb, k, parts)
	policy := ratelimit.Policy{Max: 1000, Window: time.Minute}
	t.Cleanup(func() { store.Close(); rdb.Close() })
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
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := range 64 {
			client := "client-" + strconv.Itoa(i)
			want[ingest.Partition(client, parts)] += 2
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := store.Append(ctx, client, policy, metrics(2, "t")); err != nil {
					errs <- fmt.Errorf("round %d %s: %w", round, client, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	for p := range parts {
		if n := check.XLen(ctx, k.Stream(p)).Val(); n != want[p] {
			t.Errorf("partition %d: %d entries, want %d", p, n, want[p])
		}
	}
}
