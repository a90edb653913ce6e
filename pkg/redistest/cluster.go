package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redisproc"
)

// ClusterOptions configure a test cluster.
type ClusterOptions struct {
	// FullCoverage sets cluster-require-full-coverage. The default (false,
	// "no") is what the services are documented to run with: while a master
	// is down only the slots it owns fail, the rest of the cluster keeps
	// serving. With "yes" one missing master stops the whole cluster once
	// the others flag it as failed.
	FullCoverage bool
	// NodeTimeout is cluster-node-timeout (default 2s: a short failure
	// detection keeps fault tests fast).
	NodeTimeout time.Duration
	// AppendFsyncAlways asks for appendfsync always, so a SIGKILLed node
	// loses no acknowledged write. Every node runs always now (redisproc's
	// default); the field stays for the tests that say so explicitly.
	AppendFsyncAlways bool
	// Args are extra redis-server arguments for every node.
	Args []string
}

// Cluster is a Redis Cluster of masters only (no replicas), each a
// redis-server process on a free loopback port with AOF on (appendfsync
// always), so a node can
// be stopped or killed and restarted with its data and its cluster identity
// (nodes.conf in its own directory).
type Cluster struct {
	nodes []*redisproc.Server
	opts  ClusterOptions
}

// StartCluster starts masters redis-server processes with cluster mode on,
// joins them with `redis-cli --cluster create` (the slots split evenly) and
// waits until every node reports cluster_state:ok. Everything is killed
// when the test ends. A cluster needs the real binaries: without
// redis-server and redis-cli the test is skipped, or fails when
// REQUIRE_REAL_REDIS is set.
func StartCluster(tb testing.TB, masters int, opts ClusterOptions) *Cluster {
	tb.Helper()
	if masters < 1 {
		tb.Fatalf("StartCluster: masters must be >= 1, got %d", masters)
	}
	requireBinaries(tb)
	if opts.NodeTimeout <= 0 {
		opts.NodeTimeout = 2 * time.Second
	}
	c := &Cluster{opts: opts}
	tb.Cleanup(c.close)
	ctx := context.Background()
	for range masters {
		dir := tb.TempDir()
		p, err := redisproc.Start(ctx, redisproc.Options{Dir: dir, AOF: true, Args: c.nodeArgs(dir)})
		if err != nil {
			tb.Fatalf("start cluster node: %v", err)
		}
		c.nodes = append(c.nodes, p)
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(cctx, "redis-cli", args...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(tb)
	return c
}

func requireBinaries(tb testing.TB) {
	tb.Helper()
	_, errServer := redisproc.Binary()
	_, errCLI := exec.LookPath("redis-cli")
	if errServer == nil && errCLI == nil {
		return
	}
	msg := "a Redis Cluster needs redis-server and redis-cli on PATH"
	if os.Getenv("REQUIRE_REAL_REDIS") != "" {
		tb.Fatalf("REQUIRE_REAL_REDIS is set but %s (apt-get install -y redis-server)", msg)
	}
	tb.Skip(msg)
}

func (c *Cluster) nodeArgs(dir string) []string {
	coverage := "no"
	if c.opts.FullCoverage {
		coverage = "yes"
	}
	a := []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		"--cluster-node-timeout", strconv.FormatInt(c.opts.NodeTimeout.Milliseconds(), 10),
		"--cluster-require-full-coverage", coverage,
	}
	if c.opts.AppendFsyncAlways {
		a = append(a, "--appendfsync", "always")
	}
	return append(a, c.opts.Args...)
}

// Masters is the number of nodes.
func (c *Cluster) Masters() int { return len(c.nodes) }

// Addrs are the nodes' host:port, in start order.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.Addr()
	}
	return out
}

// URL is the cluster in go-redis' cluster URL form,
// redis://h1:p1?addr=h2:p2&addr=h3:p3, for REDIS_URL with REDIS_CLUSTER=true.
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	u := "redis://" + addrs[0]
	for i, a := range addrs[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + a
	}
	return u
}

// Client returns a cluster client for the test's own assertions (go-redis
// defaults: it retries and follows redirects), closed when the test ends.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), DialTimeout: time.Second, ReadTimeout: 5 * time.Second})
	tb.Cleanup(func() { _ = cl.Close() })
	return cl
}

// NodeFor returns the index of the node that owns key's slot.
func (c *Cluster) NodeFor(tb testing.TB, key string) int {
	tb.Helper()
	ctx := context.Background()
	for i, n := range c.nodes {
		if !n.Running() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr(), DialTimeout: time.Second})
		shards, err := cl.ClusterShards(ctx).Result()
		slot, serr := cl.ClusterKeySlot(ctx, key).Result()
		_ = cl.Close()
		if err != nil || serr != nil {
			tb.Fatalf("cluster shards and keyslot from node %d: %v %v", i, err, serr)
		}
		for _, sh := range shards {
			owns := false
			for _, r := range sh.Slots {
				owns = owns || slot >= r.Start && slot <= r.End
			}
			if !owns {
				continue
			}
			for _, sn := range sh.Nodes {
				if sn.Role != "master" {
					continue
				}
				for j, m := range c.nodes {
					if m.Addr() == net.JoinHostPort(sn.IP, strconv.FormatInt(sn.Port, 10)) {
						return j
					}
				}
			}
		}
		tb.Fatalf("no node owns slot %d of %q", slot, key)
	}
	tb.Fatal("NodeFor: no node is running")
	return -1
}

// Stop shuts node i down gracefully (its AOF is flushed).
func (c *Cluster) Stop(tb testing.TB, i int) {
	tb.Helper()
	if err := c.nodes[i].Stop(); err != nil {
		tb.Fatalf("stop node %d: %v", i, err)
	}
}

// Kill ends node i with SIGKILL, as a crash would.
func (c *Cluster) Kill(tb testing.TB, i int) {
	tb.Helper()
	if err := c.nodes[i].Kill(); err != nil {
		tb.Fatalf("kill node %d: %v", i, err)
	}
}

// Restart starts a stopped or killed node i again on its port and
// directory (AOF and nodes.conf are reloaded, so it rejoins with its slots)
// and waits until the whole cluster reports cluster_state:ok.
func (c *Cluster) Restart(tb testing.TB, i int) {
	tb.Helper()
	if err := c.nodes[i].Restart(context.Background()); err != nil {
		tb.Fatalf("restart node %d: %v", i, err)
	}
	c.WaitOK(tb)
}

// WaitOK waits up to 30s until every running node reports
// cluster_state:ok and knows the same number of masters.
func (c *Cluster) WaitOK(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		msg := c.notOK()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("cluster not ok after 30s: %s", msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) notOK() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for i, n := range c.nodes {
		if !n.Running() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr(), DialTimeout: time.Second, MaxRetries: -1})
		info, err := cl.ClusterInfo(ctx).Result()
		_ = cl.Close()
		if err != nil {
			return fmt.Sprintf("node %d: %v", i, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Sprintf("node %d: cluster_state is not ok", i)
		}
		if !strings.Contains(info, "cluster_size:"+strconv.Itoa(len(c.nodes))+"\r") {
			return fmt.Sprintf("node %d does not see %d masters yet", i, len(c.nodes))
		}
	}
	return ""
}

func (c *Cluster) close() {
	for _, n := range c.nodes {
		_ = n.Kill()
	}
}

// Slot is the Redis Cluster hash slot of key, as the cluster computes it
// (CLUSTER KEYSLOT).
func (c *Cluster) Slot(tb testing.TB, key string) int {
	tb.Helper()
	n, err := c.Client(tb).ClusterKeySlot(context.Background(), key).Result()
	if err != nil {
		tb.Fatalf("cluster keyslot %q: %v", key, err)
	}
	return int(n)
}
