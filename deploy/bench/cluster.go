package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redisproc"
)

// clusterPartitions is STREAM_PARTITIONS for the cluster step.
const clusterPartitions = 4

// clusterResult is the cluster step: the same ingest and drain as the
// single-node steps, with STREAM_PARTITIONS=4 on a 3-master Redis Cluster.
type clusterResult struct {
	masters    int
	partitions int
	ingest     result
	drain      drainResult
	// single4 is the same ingest and drain on the single node with the same
	// partition count: it separates what partitioning does from what the
	// cluster (routing, more processes on the same cores) does.
	single4Ingest result
	single4Drain  drainResult
}

// benchCluster is a local Redis Cluster of masters only, AOF always like
// the single node.
type benchCluster struct {
	nodes []*redisproc.Server
}

func (c *benchCluster) addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.Addr()
	}
	return out
}

// url is the go-redis cluster URL (REDIS_URL with REDIS_CLUSTER=true).
func (c *benchCluster) url() string {
	a := c.addrs()
	return "redis://" + a[0] + "?addr=" + strings.Join(a[1:], "&addr=")
}

func (c *benchCluster) stop() {
	for _, n := range c.nodes {
		_ = n.Stop()
	}
}

func startCluster(ctx context.Context, dir string, masters int) (*benchCluster, error) {
	c := &benchCluster{}
	for i := range masters {
		d := filepath.Join(dir, "node-"+strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		n, err := redisproc.Start(ctx, redisproc.Options{Dir: d, AOF: true, Args: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(d, "nodes.conf"),
			"--cluster-require-full-coverage", "no",
		}})
		if err != nil {
			c.stop()
			return nil, fmt.Errorf("cluster node %d: %w", i, err)
		}
		c.nodes = append(c.nodes, n)
	}
	args := append([]string{"--cluster", "create"}, c.addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		c.stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range c.addrs() {
		n := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, _ := n.ClusterInfo(ctx).Result()
			if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_size:"+strconv.Itoa(masters)+"\r") {
				break
			}
			if time.Now().After(deadline) {
				n.Close()
				c.stop()
				return nil, fmt.Errorf("cluster not ok on %s after 30s", a)
			}
			time.Sleep(50 * time.Millisecond)
		}
		n.Close()
	}
	return c, nil
}

// measure runs single-metric ingest at 64 connections through bin/api and
// the one-replica drain of o.drainEntries entries through bin/aggregator,
// both with redisEnv (REDIS_URL, REDIS_CLUSTER, STREAM_PARTITIONS), on the
// same settings as the single-node steps.
func measure(ctx context.Context, o options, name string, redisEnv map[string]string, rdb redis.UniversalClient,
	partitions int, flush func() error) (result, drainResult, error) {
	addr, err := freeAddr()
	if err != nil {
		return result{}, drainResult{}, err
	}
	_, port, _ := strings.Cut(addr, ":")
	env := map[string]string{"PORT": port, "RATE_LIMIT_MAX": "1000000000", "RATE_LIMIT_WINDOW": "3600",
		"TRUSTED_PROXIES": "127.0.0.1/32", "CACHE_TTL": "60s"}
	for k, v := range redisEnv {
		env[k] = v
	}
	if err := flush(); err != nil {
		return result{}, drainResult{}, err
	}
	api, err := startProc("api-"+name, filepath.Join(o.bin, "api"), env)
	if err != nil {
		return result{}, drainResult{}, err
	}
	defer api.stop()
	if err := waitHTTP(ctx, "http://"+addr+"/health"); err != nil {
		return result{}, drainResult{}, err
	}
	ing, err := loadSpec{name: "ingest-" + name, addr: addr, conns: 64, warmup: time.Second, duration: o.duration, items: 1,
		reqs: ingestRequests(addr, singleBody)}.run(ctx, os.Stdout)
	if err != nil {
		return result{}, drainResult{}, err
	}
	api.stop()

	if err := flush(); err != nil {
		return result{}, drainResult{}, err
	}
	types, err := prefill(ctx, rdb, o.drainEntries, partitions)
	if err != nil {
		return result{}, drainResult{}, err
	}
	hport, err := redisproc.FreePort()
	if err != nil {
		return result{}, drainResult{}, err
	}
	aenv := map[string]string{"AGG_HEALTH_PORT": strconv.Itoa(hport), "CONSUMER_NAME": "bench-" + name}
	for k, v := range redisEnv {
		aenv[k] = v
	}
	start := time.Now()
	agg, err := startProc("aggregator-"+name, filepath.Join(o.bin, "aggregator"), aenv)
	if err != nil {
		return result{}, drainResult{}, err
	}
	took, err := waitDrained(ctx, rdb, types, o.drainEntries, partitions, start)
	agg.stop()
	if err != nil {
		return result{}, drainResult{}, err
	}
	d := drainResult{replicas: 1, entries: o.drainEntries, took: took}
	fmt.Printf("    %s drain, 1 replica: %d entries in %s = %.0f entries/s\n", name, o.drainEntries, took.Round(time.Millisecond), d.rate())
	return ing, d, nil
}

// stepCluster measures ingest and drain with STREAM_PARTITIONS=4 on the
// single node (srv) and on a 3-master Redis Cluster, for comparison with
// the single-node, one-partition steps of the same run.
func stepCluster(ctx context.Context, o options, rep *report, singleURL string, single *redis.Client) error {
	const masters = 3
	res := clusterResult{masters: masters, partitions: clusterPartitions}
	n := strconv.Itoa(clusterPartitions)
	fmt.Printf("bench: partitions: ingest and drain with STREAM_PARTITIONS=%d on the single node, then on a %d-master Redis Cluster\n", clusterPartitions, masters)
	var err error
	res.single4Ingest, res.single4Drain, err = measure(ctx, o, "single-p"+n,
		map[string]string{"REDIS_URL": singleURL, "STREAM_PARTITIONS": n}, single, clusterPartitions,
		func() error { return single.FlushAll(ctx).Err() })
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "ra-bench-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cl, err := startCluster(ctx, dir, masters)
	if err != nil {
		return err
	}
	defer cl.stop()
	crdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.addrs(), ReadTimeout: 30 * time.Second})
	defer crdb.Close()
	res.ingest, res.drain, err = measure(ctx, o, "cluster-p"+n,
		map[string]string{"REDIS_URL": cl.url(), "REDIS_CLUSTER": "true", "STREAM_PARTITIONS": n}, crdb, clusterPartitions,
		func() error {
			return crdb.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.FlushAll(ctx).Err() })
		})
	if err != nil {
		return err
	}
	rep.cluster = &res
	return nil
}

// overhead is how much slower cluster is than single, as a percentage
// (negative: faster).
func overhead(single, cluster float64) string {
	if single <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%+.0f%%", (single-cluster)/single*100)
}
