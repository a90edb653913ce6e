package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redistest"
)

// A node killed and restarted keeps its data (AOF) and its slots; while it
// is down only its own slots fail (cluster-require-full-coverage no).
func TestClusterNodeRestartKeepsDataAndOtherSlotsServe(t *testing.T) {
	c := redistest.StartCluster(t, 3, redistest.ClusterOptions{AppendFsyncAlways: true})
	if c.Masters() != 3 {
		t.Fatalf("masters = %d", c.Masters())
	}
	rdb := c.Client(t)
	ctx := context.Background()
	keys := []string{"{p:0}", "{p:1}", "{p:2}", "{p:3}", "{p:4}", "{p:5}"}
	for _, k := range keys {
		if err := rdb.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	victim := c.NodeFor(t, keys[0])
	c.Kill(t, victim)
	fast := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), MaxRedirects: -1, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, DialerRetries: 1})
	defer fast.Close()
	for _, k := range keys {
		err := fast.Get(ctx, k).Err()
		if c.NodeFor(t, k) == victim {
			if err == nil {
				t.Errorf("GET %s on the killed node succeeded", k)
			}
		} else if err != nil {
			t.Errorf("GET %s on a live node: %v", k, err)
		}
	}
	c.Restart(t, victim)
	for _, k := range keys {
		if v, err := rdb.Get(ctx, k).Result(); err != nil || v != "v" {
			t.Errorf("after restart GET %s = %q, %v", k, v, err)
		}
	}
}
