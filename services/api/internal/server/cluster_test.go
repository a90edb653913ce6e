package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
)

// clusterEnv is the api on a 3-master Redis Cluster with 4 partitions.
type clusterEnv struct {
	cluster *redistest.Cluster
	rdb     *redis.ClusterClient
	api     *httptest.Server
	keys    store.Keys
	parts   int
}

const clusterPartitions = 4

func startOnCluster(t *testing.T, environ map[string]string) *clusterEnv {
	t.Helper()
	c := redistest.StartCluster(t, 3, redistest.ClusterOptions{AppendFsyncAlways: true})
	environ["REDIS_URL"] = c.URL()
	environ["REDIS_CLUSTER"] = "true"
	environ["STREAM_PARTITIONS"] = strconv.Itoa(clusterPartitions)
	environ["TRUSTED_PROXIES"] = "127.0.0.0/8" // X-Forwarded-For names the client
	api, cfg := serveAPI(t, environ)
	return &clusterEnv{cluster: c, rdb: c.Client(t), api: api, keys: store.NewKeys(cfg.StreamKey), parts: clusterPartitions}
}

func (e *clusterEnv) post(t *testing.T, client, body string) reply {
	t.Helper()
	req, _ := http.NewRequest("POST", e.api.URL+"/api/metrics", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", client)
	return do(t, req)
}

// clientsPerPartition returns n client addresses for each partition.
func clientsPerPartition(parts, n int) [][]string {
	out := make([][]string, parts)
	for i := 0; ; i++ {
		ip := fmt.Sprintf("198.51.%d.%d", i/250, i%250+1)
		p := store.PartitionOf(ip, parts)
		if len(out[p]) < n {
			out[p] = append(out[p], ip)
		}
		full := true
		for _, c := range out {
			full = full && len(c) == n
		}
		if full {
			return out
		}
	}
}

// On a cluster with 4 partitions every 201's entries are in the stream of
// the client's partition (with its rate-limit key in the same slot), the
// limit is exact per client, and a batch lands in one partition.
func TestClusterIngestPartitionsAndExactLimit(t *testing.T) {
	e := startOnCluster(t, map[string]string{"RATE_LIMIT_MAX": "3"})
	ctx := context.Background()
	clients := clientsPerPartition(e.parts, 5)
	var wantLen [clusterPartitions]int64
	for p, cs := range clients {
		for _, client := range cs {
			for i := range 4 {
				body := seed
				if i == 1 {
					body = "[" + seed + "," + seed + "]"
				}
				r := e.post(t, client, body)
				if i < 3 && r.status != 201 || i == 3 && r.status != 429 {
					t.Fatalf("client %s request %d: %d %v", client, i+1, r.status, r.body)
				}
				if r.status != 201 {
					continue
				}
				ids := []string{}
				if id, ok := r.body["id"].(string); ok {
					ids = append(ids, id)
				} else {
					for _, id := range r.body["ids"].([]any) {
						ids = append(ids, id.(string))
					}
				}
				for _, id := range ids {
					got, err := e.rdb.XRange(ctx, e.keys.Stream(p), id, id).Result()
					if err != nil || len(got) != 1 {
						t.Fatalf("client %s: id %s not in partition %d's stream (%v)", client, id, p, err)
					}
				}
				wantLen[p] += int64(len(ids))
			}
			if e.cluster.Slot(t, e.keys.RateLimit(p, client)) != e.cluster.Slot(t, e.keys.Stream(p)) {
				t.Fatalf("rate-limit key and stream of partition %d are in different slots", p)
			}
			if n := e.rdb.Get(ctx, e.keys.RateLimit(p, client)).Val(); n != "4" {
				t.Errorf("client %s counter = %q, want 4", client, n)
			}
		}
	}
	nodes := map[int]bool{}
	for p := range e.parts {
		if n := e.rdb.XLen(ctx, e.keys.Stream(p)).Val(); n != wantLen[p] {
			t.Errorf("partition %d stream has %d entries, want %d", p, n, wantLen[p])
		}
		nodes[e.cluster.NodeFor(t, e.keys.Stream(p))] = true
	}
	if len(nodes) < 2 {
		t.Errorf("the %d partitions live on %d node(s); the test means to spread them", e.parts, len(nodes))
	}
}

// A cluster node killed mid-stream: requests routed to its partitions get
// 503 (with Retry-After) while the other partitions keep taking 201s; after
// it restarts from its AOF every entry that got a 201 is still there and
// its partitions take writes again (its script cache is empty: NOSCRIPT is
// handled per node).
func TestClusterNodeRestartLosesNo201(t *testing.T) {
	e := startOnCluster(t, map[string]string{"RATE_LIMIT_MAX": "1000"})
	ctx := context.Background()
	clients := clientsPerPartition(e.parts, 1)
	acked := map[int][]string{} // partition -> ids that got a 201
	post := func(p int) reply {
		r := e.post(t, clients[p][0], seed)
		if r.status == 201 {
			acked[p] = append(acked[p], r.body["id"].(string))
		}
		return r
	}
	for round := range 20 {
		for p := range e.parts {
			if r := post(p); r.status != 201 {
				t.Fatalf("round %d partition %d: %d", round, p, r.status)
			}
		}
	}
	victim := e.cluster.NodeFor(t, e.keys.Stream(0))
	down := map[int]bool{}
	for p := range e.parts {
		down[p] = e.cluster.NodeFor(t, e.keys.Stream(p)) == victim
	}
	e.cluster.Kill(t, victim)
	for round := range 10 {
		for p := range e.parts {
			r := post(p)
			switch {
			case down[p] && (r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == ""):
				t.Fatalf("round %d partition %d on the killed node: %d %v", round, p, r.status, r.header)
			case !down[p] && r.status != 201:
				t.Fatalf("round %d partition %d on a live node: %d %v", round, p, r.status, r.body)
			}
		}
	}
	e.cluster.Restart(t, victim)
	for p := range e.parts {
		if r := post(p); r.status != 201 {
			t.Fatalf("partition %d after the restart: %d %v", p, r.status, r.body)
		}
	}
	for p, ids := range acked {
		n, err := e.rdb.XLen(ctx, e.keys.Stream(p)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(ids)) {
			t.Errorf("partition %d: %d entries, %d got a 201", p, n, len(ids))
		}
		for _, id := range ids {
			if got := e.rdb.XRange(ctx, e.keys.Stream(p), id, id).Val(); len(got) != 1 {
				t.Errorf("partition %d: entry %s got a 201 and is gone", p, id)
			}
		}
	}
}

// A single Redis node works with several partitions too: each client's
// entries land in its partition's stream, the limit holds per client.
func TestSingleNodeWithThreePartitions(t *testing.T) {
	e := start(t, map[string]string{"STREAM_PARTITIONS": "3", "RATE_LIMIT_MAX": "2", "TRUSTED_PROXIES": "127.0.0.0/8"})
	ctx := context.Background()
	for p, cs := range clientsPerPartition(3, 2) {
		for _, client := range cs {
			for i := range 3 {
				r := e.post(t, seed, "X-Forwarded-For", client)
				if i < 2 && r.status != 201 || i == 2 && r.status != 429 {
					t.Fatalf("client %s request %d: %d", client, i+1, r.status)
				}
				if r.status == 201 {
					id := r.body["id"].(string)
					if got := e.rdb.XRange(ctx, e.keys.Stream(p), id, id).Val(); len(got) != 1 {
						t.Fatalf("client %s: id %s not in partition %d", client, id, p)
					}
				}
			}
		}
		if n := e.rdb.XLen(ctx, e.keys.Stream(p)).Val(); n != 4 {
			t.Errorf("partition %d: %d entries, want 4", p, n)
		}
	}
}
