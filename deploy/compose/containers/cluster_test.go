package containers

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const clusterFile = "deploy/compose/compose.cluster.yaml"

var (
	nodes      = []string{"redis-1", "redis-2", "redis-3"}
	partitions = 4 // compose.cluster.yaml's STREAM_PARTITIONS default
)

// TestClusterStack runs compose.cluster.yaml: three Redis masters, the
// one-shot cluster init, the api and the aggregator. Metrics of many
// clients spread over the partitions and come back merged through the api;
// with one node killed only the clients whose partition lives there get
// 503, and all recover when it starts again.
func TestClusterStack(t *testing.T) {
	images := requireDocker(t)
	s := newStack(t, images, []string{clusterFile}, map[string]string{"TRUSTED_PROXIES": trustedProxies})
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	const clients = 40
	step("up --build --wait: nodes, api and aggregator healthy, init done", func(t *testing.T) {
		s.t = t
		s.compose("up", "--build", "--wait", "--wait-timeout", "300")
		for _, svc := range append([]string{"api", "aggregator"}, nodes...) {
			s.waitHealthy(svc, 1, 10*time.Second)
		}
		if cs := s.containers("redis-cluster-init"); len(cs) != 1 || cs[0].State != "exited" || cs[0].ExitCode != 0 {
			t.Errorf("redis-cluster-init: %+v, want one exited with 0", cs)
		}
	})

	step("ingest from many clients, merged summary through the api", func(t *testing.T) {
		s.t = t
		for i := range clients {
			body := fmt.Sprintf(`[{"timestamp":"2026-02-15T10:00:00Z","value":%d,"type":"cl_cpu"},{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"cl_cpu"}]`, i)
			if r := mustCall(t, http.MethodPost, s.base+"/api/metrics", body, clientIP(i)); r.status != http.StatusCreated {
				t.Fatalf("client %d: %d %s", i, r.status, r.body)
			}
		}
		s.waitCounts(func() map[string]int { return s.clusterCounts("cl_cpu") }, map[string]int{"cl_cpu": 2 * clients}, 60*time.Second)
		r := mustCall(t, http.MethodGet, s.base+"/api/metrics/summary?type=cl_cpu", "", "")
		want := fmt.Sprintf(`"count":%d`, 2*clients)
		wantSum := fmt.Sprintf(`"sum":%d`, clients*(clients-1)/2+clients)
		if r.status != http.StatusOK || !strings.Contains(string(r.body), want) || !strings.Contains(string(r.body), wantSum) {
			t.Errorf("merged summary: %d %s, want %s and %s", r.status, r.body, want, wantSum)
		}
	})

	step("one node killed: only its partitions 503, all recover after start", func(t *testing.T) {
		s.t = t
		owner := s.partitionOwners()
		part := s.clientPartitions()
		if len(part) != clients {
			t.Fatalf("rate-limit keys name %d clients, want %d: %v", len(part), clients, part)
		}
		victim := owner[part[clientIP(0)]]
		down := map[string]bool{}
		for ip, p := range part {
			down[ip] = owner[p] == victim
		}
		t.Logf("partition owners %v; killing %s", owner, victim)
		s.compose("kill", victim)
		status := postAll(s.base, clients, "cl_down")
		downOK := 0
		for i := range clients {
			ip := clientIP(i)
			want := http.StatusCreated
			if down[ip] {
				want = http.StatusServiceUnavailable
			} else {
				downOK++
			}
			if status[i] != want {
				t.Errorf("client %s (partition %d on %s) got %d with %s down, want %d", ip, part[ip], owner[part[ip]], status[i], victim, want)
			}
		}
		if downOK == 0 || downOK == clients {
			t.Fatalf("%d of %d clients on live nodes: the check says nothing", downOK, clients)
		}
		s.compose("start", victim)
		s.waitHealthy(victim, 1, 60*time.Second)
		eventually(t, 60*time.Second, func() bool {
			out, err := s.redisText("redis-1", "CLUSTER", "INFO")
			return err == nil && strings.Contains(out, "cluster_state:ok")
		}, func() string { return "the cluster is not ok again" })
		var ok int
		eventually(t, 60*time.Second, func() bool {
			ok = 0
			for _, st := range postAll(s.base, clients, "") {
				if st == http.StatusCreated {
					ok++
				}
			}
			return ok == clients
		}, func() string { return fmt.Sprintf("%d of %d clients get 201 after the node came back", ok, clients) })
		s.waitCounts(func() map[string]int { return s.clusterCounts("cl_cpu", "cl_down", "cl_after") },
			map[string]int{"cl_cpu": 2 * clients, "cl_down": downOK, "cl_after": clients}, 60*time.Second)
	})
}

// postAll posts one metric of typ (cl_after while typ is "", retrying only
// the clients not yet accepted) from each of n clients, eight at a time,
// and returns their statuses.
var posted sync.Map // client -> accepted cl_after

func postAll(base string, n int, typ string) []int {
	status := make([]int, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		ip := clientIP(i)
		t := typ
		if t == "" {
			if _, done := posted.Load(base + ip); done {
				status[i] = http.StatusCreated
				continue
			}
			t = "cl_after"
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			r, err := call(http.MethodPost, base+"/api/metrics", metrics(t, 1, 1), ip)
			if err == nil {
				status[i] = r.status
				if typ == "" && r.status == http.StatusCreated {
					posted.Store(base+ip, true)
				}
			}
		})
	}
	wg.Wait()
	return status
}

// clusterCounts merges each type's count over the partitions (redis-cli -c
// follows the slot redirects).
func (s *stack) clusterCounts(types ...string) map[string]int {
	s.t.Helper()
	var cmds []string
	for _, typ := range types {
		for p := range partitions {
			cmds = append(cmds, "HGET "+summaryKey(p, typ)+" count")
		}
	}
	out := map[string]int{}
	for i, r := range s.mustRedis("redis-1", []string{"-c"}, cmds...) {
		out[types[i/partitions]] += toInt(r)
	}
	return out
}

// partitionOwners maps each partition to the node (service) serving its
// hash tag's slot.
func (s *stack) partitionOwners() map[int]string {
	s.t.Helper()
	ids := map[string]string{}
	for _, n := range nodes {
		ids[fmt.Sprint(s.mustRedis(n, nil, "CLUSTER MYID")[0])] = n
	}
	var cmds []string
	for p := range partitions {
		cmds = append(cmds, fmt.Sprintf("CLUSTER KEYSLOT {metrics:%d}", p))
	}
	r := s.mustRedis("redis-1", nil, cmds...)
	// CLUSTER NODES is a verbatim string, which --json does not quote.
	clusterNodes, err := s.redisText("redis-1", "CLUSTER", "NODES")
	if err != nil {
		s.t.Fatal(err)
	}
	owner := map[int]string{}
	for _, line := range strings.Split(clusterNodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 {
			continue
		}
		for _, rng := range f[8:] {
			lo, hi, found := strings.Cut(rng, "-")
			if !found {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil {
				continue
			}
			for p := range partitions {
				if slot := toInt(r[p]); slot >= a && slot <= b {
					owner[p] = ids[f[0]]
				}
			}
		}
	}
	if len(owner) != partitions {
		s.t.Fatalf("slot owners of the partitions: %v from %v", owner, r)
	}
	return owner
}

var rlKey = regexp.MustCompile(`^\{metrics:(\d+)\}:rl:(.+)$`)

// clientPartitions reads, from the rate-limit keys on every node, which
// partition each client was routed to.
func (s *stack) clientPartitions() map[string]int {
	s.t.Helper()
	part := map[string]int{}
	for _, n := range nodes {
		out, err := s.redisText(n, "--scan", "--pattern", "*:rl:*")
		if err != nil {
			s.t.Fatal(err)
		}
		for _, k := range strings.Fields(out) {
			if m := rlKey.FindStringSubmatch(k); m != nil {
				p, _ := strconv.Atoi(m[1])
				part[m[2]] = p
			}
		}
	}
	return part
}

// redisText runs one redis-cli command line in service and returns its
// plain output.
func (s *stack) redisText(service string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.Exec(ctx, nil, service, append([]string{"redis-cli"}, args...)...)
	return string(out), err
}
