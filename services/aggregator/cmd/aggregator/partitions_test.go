package main_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/internal/streamtest"
)

// addSpread appends ms round-robin over the partitions' streams (the api
// spreads clients the same way, by hash).
func addSpread(t *testing.T, rdb redis.Cmdable, k store.Keys, parts int, ms []metric.Metric) {
	t.Helper()
	per := make([][]metric.Metric, parts)
	for i, m := range ms {
		per[i%parts] = append(per[i%parts], m)
	}
	for p, pm := range per {
		if len(pm) > 0 {
			streamtest.Add(t, rdb, k.Stream(p), pm...)
		}
	}
}

// waitExactAll waits until the merged summaries over every partition equal
// want and no partition has a pending entry.
func waitExactAll(t *testing.T, rdb redis.Cmdable, k store.Keys, parts int, want streamtest.Expect, timeout time.Duration) {
	t.Helper()
	streamtest.Eventually(t, timeout, func() string {
		if d := want.DiffAll(t, rdb, k, parts); d != "" {
			return d
		}
		for p := range parts {
			if n := streamtest.Pending(t, rdb, k.Stream(p), group); n != 0 {
				return fmt.Sprintf("partition %d: XPENDING reports %d entries", p, n)
			}
		}
		return ""
	})
	for p := range parts {
		if l := rdb.XLen(context.Background(), k.Dead(p)).Val(); l != 0 {
			t.Errorf("partition %d: %d entries dead-lettered, want 0", p, l)
		}
	}
}

// TestClusterCrashSafetySIGKILL is TestCrashSafetySIGKILL on a 3-master
// Redis Cluster with 4 partitions: every replica runs a loop per partition;
// one is SIGKILLed mid-stream, a third starts later. The totals merged over
// the partitions are exact and nothing is pending anywhere.
func TestClusterCrashSafetySIGKILL(t *testing.T) {
	c := redistest.StartCluster(t, 3, redistest.ClusterOptions{})
	rdb := c.Client(t)
	k := store.NewKeys(store.DefaultFamily)
	const parts, n, chunk = 4, 8000, 400
	ms := workload(n, 0)
	want := streamtest.Expect{}
	want.Add(ms...)
	env := []string{"REDIS_CLUSTER=true", "STREAM_PARTITIONS=" + strconv.Itoa(parts), "AGG_BATCH_SIZE=50"}

	a := startAgg(t, c.URL(), "replica-a", env...)
	startAgg(t, c.URL(), "replica-b", env...)
	for off := 0; off < n; off += chunk {
		if off == n/4 {
			// A burst keeps both replicas busy in every partition, so the
			// SIGKILL very likely finds replica-a with batches in hand.
			addSpread(t, rdb, k, parts, ms[off:off+2400])
			off += 2400 - chunk
		} else {
			addSpread(t, rdb, k, parts, ms[off:off+chunk])
		}
		switch off {
		case n/4 + 2400 - chunk:
			time.Sleep(2 * time.Millisecond)
			if code := a.stop(t, syscall.SIGKILL); code != -1 {
				t.Fatalf("replica-a exit code %d after SIGKILL", code)
			}
			owned := 0
			for p := range parts {
				owned += len(rdb.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: k.Stream(p), Group: group,
					Start: "-", End: "+", Count: 1000, Consumer: "replica-a"}).Val())
			}
			t.Logf("replica-a died owning %d pending entries", owned)
		case 3 * n / 4:
			startAgg(t, c.URL(), "replica-c", env...)
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitExactAll(t, rdb, k, parts, want, 40*time.Second)
}

// TestSingleNodeThreePartitions: a single Redis with STREAM_PARTITIONS=3
// works the same way; /health reports the three partitions, and SIGTERM
// leaves every partition's group.
func TestSingleNodeThreePartitions(t *testing.T) {
	srv := redistest.Start(t)
	srv.RequireReal(t)
	rdb := srv.Client(t)
	k := store.NewKeys(store.DefaultFamily)
	const parts = 3
	ms := workload(3000, 0)
	want := streamtest.Expect{}
	want.Add(ms...)
	addSpread(t, rdb, k, parts, ms[:1500])
	a := startAgg(t, srv.URL(), "solo", "STREAM_PARTITIONS=3")
	startAgg(t, srv.URL(), "duo", "STREAM_PARTITIONS=3")
	addSpread(t, rdb, k, parts, ms[1500:])
	waitExactAll(t, rdb, k, parts, want, 20*time.Second)
	streamtest.Eventually(t, 5*time.Second, func() string {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(a.port) + "/health")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.WriteString(string(buf[:n]))
			if err != nil {
				break
			}
		}
		if resp.StatusCode != 200 || strings.Count(b.String(), `"partition":`) != parts {
			return fmt.Sprintf("/health %d %s", resp.StatusCode, b.String())
		}
		return ""
	})
	if code := a.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	for p := range parts {
		for _, c := range rdb.XInfoConsumers(context.Background(), k.Stream(p), group).Val() {
			if c.Name == "solo" {
				t.Errorf("partition %d: consumer solo still registered after a clean shutdown", p)
			}
		}
	}
}

// TestClusterNodeRestarted: a cluster node is SIGKILLed while two replicas
// consume 4 partitions and restarted from its AOF (appendfsync always).
// The partitions on the other nodes keep being applied meanwhile, /health
// reports the missing partitions, and once the node is back the totals are
// exact (its empty script cache is handled).
func TestClusterNodeRestarted(t *testing.T) {
	c := redistest.StartCluster(t, 3, redistest.ClusterOptions{AppendFsyncAlways: true})
	rdb := c.Client(t)
	k := store.NewKeys(store.DefaultFamily)
	const parts = 4
	env := []string{"REDIS_CLUSTER=true", "STREAM_PARTITIONS=" + strconv.Itoa(parts), "AGG_BATCH_SIZE=20"}
	first := workload(4000, 0)
	want := streamtest.Expect{}
	want.Add(first...)
	addSpread(t, rdb, k, parts, first)
	a := startAgg(t, c.URL(), "survivor-a", env...)
	startAgg(t, c.URL(), "survivor-b", env...)

	victim := c.NodeFor(t, k.Stream(0))
	var live []int
	for p := range parts {
		if c.NodeFor(t, k.Stream(p)) != victim {
			live = append(live, p)
		}
	}
	c.Kill(t, victim)
	// Entries written to the live partitions while the node is down are
	// applied meanwhile.
	during := workload(400, 4000)
	for i, m := range during {
		streamtest.Add(t, rdb, k.Stream(live[i%len(live)]), m)
	}
	want.Add(during...)
	streamtest.Eventually(t, 15*time.Second, func() string {
		for _, p := range live {
			if n := streamtest.Pending(t, rdb, k.Stream(p), group); n != 0 {
				return fmt.Sprintf("live partition %d: %d pending", p, n)
			}
			info := rdb.XInfoGroups(context.Background(), k.Stream(p)).Val()
			if len(info) != 1 || info[0].Lag != 0 {
				return fmt.Sprintf("live partition %d not drained: %+v", p, info)
			}
		}
		return ""
	})
	if s := a.healthStatus(); s != http.StatusServiceUnavailable {
		t.Errorf("/health = %d with a node down, want 503", s)
	}
	if !a.running() {
		t.Fatal("the aggregator exited while a node was down")
	}
	c.Restart(t, victim)
	after := workload(800, 4400)
	want.Add(after...)
	addSpread(t, rdb, k, parts, after)
	waitExactAll(t, rdb, k, parts, want, 30*time.Second)
	streamtest.Eventually(t, 15*time.Second, func() string {
		if s := a.healthStatus(); s != http.StatusOK {
			return fmt.Sprintf("/health = %d after the node came back", s)
		}
		return ""
	})
}
