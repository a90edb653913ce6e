package compose

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/resilientanalytics/ra/deploy/compose/internal/stacktest"
	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	aggconfig "github.com/resilientanalytics/ra/services/aggregator/config"
	apiconfig "github.com/resilientanalytics/ra/services/api/config"
)

const clusterComposeFile = "compose.cluster.yaml"

// TestClusterComposeFile: the optional cluster file runs the same api and
// aggregator (extends compose.yaml) on three cluster nodes that the
// services reach through the cluster client, with 4 partitions by default.
func TestClusterComposeFile(t *testing.T) {
	p := loadProject(t, clusterComposeFile, nil)
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range p.Services {
			if !yield(n) {
				return
			}
		}
	})
	want := []string{"aggregator", "api", "redis-1", "redis-2", "redis-3", "redis-cluster-init"}
	if !slices.Equal(names, want) {
		t.Fatalf("services = %v, want %v", names, want)
	}
	single := loadProject(t, composeFile, nil)
	for _, name := range []string{"api", "aggregator"} {
		s := service(t, p, name)
		env := environment(s)
		if env["REDIS_CLUSTER"] != "true" || env["STREAM_PARTITIONS"] != "4" {
			t.Errorf("%s: REDIS_CLUSTER=%q STREAM_PARTITIONS=%q, want true and 4", name, env["REDIS_CLUSTER"], env["STREAM_PARTITIONS"])
		}
		rc := redisclient.Config{URL: env["REDIS_URL"], Cluster: true}
		opt, err := rc.ClusterOptions()
		if err != nil {
			t.Fatalf("%s: REDIS_URL %q: %v", name, env["REDIS_URL"], err)
		}
		if got := strings.Join(opt.Addrs, ","); got != "redis-1:6379,redis-2:6379,redis-3:6379" {
			t.Errorf("%s: cluster seeds %s", name, got)
		}
		// Everything else is compose.yaml's, so its tests cover it.
		base := environment(service(t, single, name))
		for k, v := range base {
			if k == "REDIS_URL" || k == "REDIS_CLUSTER" || k == "STREAM_PARTITIONS" {
				continue
			}
			if env[k] != v {
				t.Errorf("%s: %s=%q, compose.yaml has %q", name, k, env[k], v)
			}
		}
		if s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 {
			t.Errorf("%s: no healthcheck", name)
		}
		if d := s.DependsOn["redis-cluster-init"]; d.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s: depends_on redis-cluster-init = %+v, want service_completed_successfully", name, d)
		}
		var err2 error
		switch name {
		case "api":
			_, err2 = apiconfig.Load(env)
		case "aggregator":
			_, err2 = aggconfig.Load(env)
		}
		if err2 != nil {
			t.Errorf("%s rejects the environment the cluster file gives it: %v", name, err2)
		}
	}
	for _, name := range []string{"redis-1", "redis-2", "redis-3"} {
		s := service(t, p, name)
		cmd := strings.Join(s.Command, " ")
		for _, want := range []string{"--cluster-enabled yes", "--cluster-require-full-coverage no", "--appendonly yes", "--maxmemory-policy noeviction"} {
			if !strings.Contains(cmd, want) {
				t.Errorf("%s: command %q lacks %q", name, cmd, want)
			}
		}
		if s.HealthCheck == nil || !strings.Contains(strings.Join(s.HealthCheck.Test, " "), "redis-cli ping") {
			t.Errorf("%s: healthcheck %+v", name, s.HealthCheck)
		}
		if len(s.Volumes) != 1 || s.Volumes[0].Target != "/data" {
			t.Errorf("%s: volumes %+v, want its own volume on /data (AOF and nodes.conf)", name, s.Volumes)
		}
	}
	initCmd := strings.Join(service(t, p, "redis-cluster-init").Command, " ")
	if !strings.Contains(initCmd, "--cluster create") || !strings.Contains(initCmd, "--cluster-replicas 0") {
		t.Errorf("redis-cluster-init command %q", initCmd)
	}
	if agg := service(t, p, "aggregator"); agg.ContainerName != "" || len(agg.Ports) != 0 {
		t.Error("aggregator must stay scalable (no container_name, no host port)")
	}
}

// TestClusterStackAsComposeRunsIt starts the api and two aggregators with
// exactly the environment compose.cluster.yaml gives them (only REDIS_URL,
// the ports and TRUSTED_PROXIES, so test clients can be told apart, come
// from the test) against a local 3-master cluster, and checks that metrics
// from many clients are spread over the 4 partitions and aggregated exactly
// once: the per-partition summaries add up to what was sent.
func TestClusterStackAsComposeRunsIt(t *testing.T) {
	bins := stacktest.Build(t)
	cl := redistest.StartCluster(t, 3, redistest.ClusterOptions{})
	apiPort := stacktest.FreePort(t)
	start := func(name, svcName, bin string, aggPort int) (types.ServiceConfig, *stacktest.Proc) {
		p := loadProject(t, clusterComposeFile, map[string]string{
			"PORT": strconv.Itoa(apiPort), "AGG_HEALTH_PORT": strconv.Itoa(aggPort), "TRUSTED_PROXIES": "127.0.0.0/8",
		})
		svc := p.Services[svcName]
		env := environment(svc)
		env["REDIS_URL"] = cl.URL()
		return svc, stacktest.Run(t, name, bin, env)
	}
	var started []struct {
		svc  types.ServiceConfig
		proc *stacktest.Proc
	}
	for _, s := range []struct{ name, svc, bin string }{
		{"api", "api", bins.API}, {"aggregator-1", "aggregator", bins.Aggregator}, {"aggregator-2", "aggregator", bins.Aggregator},
	} {
		svc, proc := start(s.name, s.svc, s.bin, stacktest.FreePort(t))
		started = append(started, struct {
			svc  types.ServiceConfig
			proc *stacktest.Proc
		}{svc, proc})
	}
	for _, m := range started {
		stacktest.WaitHealthy(t, bins.Healthcheck, m.svc.HealthCheck.Test[2:], m.proc, 30*time.Second)
	}
	env := environment(started[0].svc)
	parts, _ := strconv.Atoi(env["STREAM_PARTITIONS"])
	k := store.NewKeys(env["STREAM_KEY"])
	c := &http.Client{Timeout: 10 * time.Second}
	const clients = 40
	ts := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
	for i := range clients {
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+strconv.Itoa(apiPort)+"/api/metrics",
			strings.NewReader(fmt.Sprintf(`[{"timestamp":%[1]q,"value":%[2]d,"type":"cl_cpu"},{"timestamp":%[1]q,"value":1,"type":"cl_cpu"}]`, ts, i)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("client %d: status %d", i, resp.StatusCode)
		}
	}
	rdb := cl.Client(t)
	ctx := context.Background()
	wantCount, wantSum := int64(2*clients), float64(clients*(clients-1)/2+clients)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var total store.Summary
		used := 0
		for p := range parts {
			s, ok, err := store.SummaryFromHash(rdb.HGetAll(ctx, k.Summary(p, "cl_cpu")).Val())
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				total = total.Merge(s)
				used++
			}
		}
		if total.Count == wantCount && total.Sum == wantSum && used > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("merged over %d partitions (%d used): count %d sum %v, want %d and %v", parts, used, total.Count, total.Sum, wantCount, wantSum)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The api's all-time summary merges the partitions (read only now, so
	// no partial total was cached).
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(apiPort) + "/api/metrics/summary?type=cl_cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Count int64   `json:"count"`
		Sum   float64 `json:"sum"`
		Min   float64 `json:"min_value"`
		Max   float64 `json:"max_value"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("summary: status %d, %v", resp.StatusCode, err)
	}
	if got.Count != wantCount || got.Sum != wantSum || got.Min != 0 || got.Max != clients-1 {
		t.Errorf("summary over the cluster = %+v, want count %d sum %v min 0 max %d", got, wantCount, wantSum, clients-1)
	}
}
