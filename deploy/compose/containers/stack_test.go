package containers

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/deploy/compose/internal/dockerstack"
)

// TestComposeStack runs the root compose.yaml as the README says, under a
// unique project name, and walks one stack through the seed scenario,
// scaling, the two faults, stop and down. The steps share the stack and
// run in order; a failed step stops the rest.
func TestComposeStack(t *testing.T) {
	images := requireDocker(t)
	s := newStack(t, images, nil, map[string]string{
		// The simulator always fails, so the breaker trips on cue.
		"EXTERNAL_FAILURE_RATE": "1",
		"TRUSTED_PROXIES":       trustedProxies,
		// A killed replica's entries are claimed after 2s, not 30s.
		"AGG_CLAIM_MIN_IDLE": "2s",
		"AGG_CLAIM_INTERVAL": "1s",
	})
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("up --build --wait: all three services healthy", func(t *testing.T) {
		s.t = t
		s.compose("up", "--build", "--wait", "--wait-timeout", "300")
		byService := map[string][]dockerstack.Container{}
		for _, c := range s.ps() {
			byService[c.Service] = append(byService[c.Service], c)
		}
		for _, svc := range []string{"redis", "api", "aggregator"} {
			cs := byService[svc]
			if len(cs) != 1 || cs[0].State != "running" || cs[0].Health != "healthy" {
				t.Errorf("%s: %+v, want one running healthy container", svc, cs)
			}
		}
		if len(byService) != 3 {
			t.Errorf("services %v, want redis, api, aggregator", byService)
		}
	})

	step("seed scenario through the published port", func(t *testing.T) {
		s.t = t
		seedScenario(t, s)
	})

	step("--scale aggregator=3 under load: three consumers, each metric counted once", func(t *testing.T) {
		s.t = t
		l := startLoad(s.base, "scale_load", 0, 10)
		_, err := s.Compose(context.Background(), "up", "--wait", "--wait-timeout", "120", "--scale", "aggregator=3")
		accepted := l.end(t)
		if err != nil {
			t.Fatal(err)
		}
		s.waitHealthy("aggregator", 3, 60*time.Second)
		var consumers []string
		eventually(t, 30*time.Second, func() bool {
			consumers = s.consumers()
			return len(consumers) == 3
		}, func() string { return fmt.Sprintf("consumers in the group: %v, want 3", consumers) })
		s.waitCounts(func() map[string]int { return s.counts("scale_load") }, map[string]int{"scale_load": accepted}, 60*time.Second)
		t.Logf("%d metrics posted while scaling, each counted once", accepted)
	})

	step("kill one aggregator replica under load: nothing lost or doubled, its pending entries claimed", func(t *testing.T) {
		s.t = t
		// Compose's kill has no --index: kill the replica's container.
		victim := s.containers("aggregator")[2]
		host, err := dockerstack.Docker(context.Background(), nil, "inspect", "--format", "{{.Config.Hostname}}", victim.Name)
		if err != nil {
			t.Fatal(err)
		}
		// The consumer is <hostname>-<pid>; the service is pid 1.
		consumer := strings.TrimSpace(string(host)) + "-1"
		l := startLoad(s.base, "kill_load", 50000, 10)
		// The victim must die holding entries. Frozen while blocked in
		// XREADGROUP it still gets a batch (Redis delivers it to the
		// socket), and frozen mid-batch it holds that one: pause it until
		// it holds some, then kill it before the 2s claim idle passes.
		var pending int
		eventually(t, 60*time.Second, func() bool {
			mustDocker(t, "pause", victim.Name)
			time.Sleep(300 * time.Millisecond)
			if pending = s.pendingOf(consumer); pending > 0 {
				return true
			}
			mustDocker(t, "unpause", victim.Name)
			time.Sleep(200 * time.Millisecond)
			return false
		}, func() string { return "the victim never held pending entries" })
		mustDocker(t, "kill", victim.Name)
		time.Sleep(time.Second) // keep the load going past the kill
		accepted := l.end(t)
		t.Logf("killed %s (consumer %s) holding %d pending entries", victim.Name, consumer, pending)
		s.waitCounts(func() map[string]int { return s.counts("kill_load") }, map[string]int{"kill_load": accepted}, 60*time.Second)
		eventually(t, 30*time.Second, func() bool { return s.pendingOf(consumer) == 0 && s.pendingTotal() == 0 },
			func() string {
				return fmt.Sprintf("pending: %d of the victim, %d in all; want both 0", s.pendingOf(consumer), s.pendingTotal())
			})
		if c := s.containerNamed(victim.Name); c.State != "exited" {
			t.Errorf("victim is %s after the kill, want exited (restart: unless-stopped keeps a killed one down)", c.State)
		}
		// Out of the way of the stop step, which wants exit code 0 from all.
		mustDocker(t, "rm", victim.Name)
	})

	step("kill redis, then start it: 503 while down, 201 after, summaries intact from the AOF", func(t *testing.T) {
		s.t = t
		types := []string{"seed_cpu", "seed_mem", "scale_load", "kill_load"}
		before := s.counts(types...)
		// appendfsync everysec: give the AOF its second before the kill.
		time.Sleep(3 * time.Second)
		s.compose("kill", "redis")
		r := mustCall(t, http.MethodPost, s.base+"/api/metrics", metrics("after_redis", 1, 1), clientIP(100000))
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Errorf("POST with Redis down: %d (Retry-After %q) %s, want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
		}
		s.compose("start", "redis")
		s.waitHealthy("redis", 1, 60*time.Second)
		eventually(t, 60*time.Second, func() bool {
			r, err := call(http.MethodPost, s.base+"/api/metrics", metrics("after_redis", 1, 1), clientIP(100001))
			return err == nil && r.status == http.StatusCreated
		}, func() string { return "the api never took a metric again after Redis came back" })
		if after := s.counts(types...); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("summaries after the restart %v, before %v: the AOF volume lost some", after, before)
		}
		s.waitCounts(func() map[string]int { return s.counts("after_redis") }, map[string]int{"after_redis": 1}, 30*time.Second)
	})

	step("stop: every service exits 0 within its stop_grace_period", func(t *testing.T) {
		s.t = t
		s.compose("stop")
		cs := s.ps()
		if len(cs) != 4 { // redis, api, two aggregators
			t.Errorf("containers after stop: %+v, want 4", cs)
		}
		for _, c := range cs {
			// A container still running at the end of its grace period is
			// SIGKILLed: exit code 137.
			if c.State != "exited" || c.ExitCode != 0 {
				t.Errorf("%s: %s with exit code %d, want exited with 0", c.Name, c.State, c.ExitCode)
			}
		}
	})

	step("down -v leaves no container, network or volume", func(t *testing.T) {
		s.t = t
		s.compose("down", "-v", "--rmi", "local")
		left, err := s.Leftovers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(left) > 0 {
			t.Errorf("left after down -v: %v", left)
		}
	})
}

// seedScenario is the README's: 201, summary count and average, 429 with
// Retry-After on the 6th POST, the breaker opens and answers the fallback.
// Its POSTs come from the gateway address itself (no X-Forwarded-For).
func seedScenario(t *testing.T, s *stack) {
	r := mustCall(t, http.MethodPost, s.base+"/api/metrics", `{"timestamp":"2026-02-15T10:00:00","value":75,"type":"seed_cpu"}`, "")
	var one struct{ ID, Type string }
	if r.status != http.StatusCreated || json.Unmarshal(r.body, &one) != nil || one.ID == "" || one.Type != "seed_cpu" {
		t.Fatalf("POST one metric: %d %s, want 201 with id and type", r.status, r.body)
	}
	r = mustCall(t, http.MethodPost, s.base+"/api/metrics",
		`[{"timestamp":"2026-02-15T10:00:00Z","value":10,"type":"seed_mem"},{"timestamp":"2026-02-15T10:00:01Z","value":20,"type":"seed_mem"},{"timestamp":"2026-02-15T10:00:02Z","value":60,"type":"seed_mem"}]`, "")
	if r.status != http.StatusCreated {
		t.Fatalf("POST a batch: %d %s, want 201", r.status, r.body)
	}
	// Wait in Redis: a summary read through the api before the aggregator
	// applied it would be cached for CACHE_TTL.
	s.waitCounts(func() map[string]int { return s.counts("seed_cpu", "seed_mem") }, map[string]int{"seed_cpu": 1, "seed_mem": 3}, 30*time.Second)
	for _, w := range []struct {
		typ   string
		count int
		avg   float64
	}{{"seed_cpu", 1, 75}, {"seed_mem", 3, 30}} {
		r := mustCall(t, http.MethodGet, s.base+"/api/metrics/summary?type="+w.typ, "", "")
		var sum struct {
			Count   int     `json:"count"`
			Average float64 `json:"average_value"`
		}
		if r.status != http.StatusOK || json.Unmarshal(r.body, &sum) != nil || sum.Count != w.count || math.Abs(sum.Average-w.avg) > 1e-9 {
			t.Errorf("summary %s: %d %s, want count %d average_value %v", w.typ, r.status, r.body, w.count, w.avg)
		}
	}
	for i := 3; i <= 5; i++ {
		if r := mustCall(t, http.MethodPost, s.base+"/api/metrics", metrics("seed_rl", 1, 1), ""); r.status != http.StatusCreated {
			t.Fatalf("POST #%d: %d %s, want 201", i, r.status, r.body)
		}
	}
	r = mustCall(t, http.MethodPost, s.base+"/api/metrics", metrics("seed_rl", 1, 1), "")
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); r.status != http.StatusTooManyRequests || err != nil || ra < 1 || ra > 60 {
		t.Errorf("6th POST: %d, Retry-After %q, want 429 with whole seconds in 1..60", r.status, r.header.Get("Retry-After"))
	}
	var state string
	for i := 0; i < 5 && state != "OPEN"; i++ {
		r = mustCall(t, http.MethodGet, s.base+"/api/external-data", "", "")
		var b struct {
			State   string `json:"circuit_state"`
			Message string `json:"message"`
		}
		if r.status != http.StatusServiceUnavailable || json.Unmarshal(r.body, &b) != nil || b.Message != "Fallback response: External service unavailable" {
			t.Fatalf("external-data call %d: %d %s, want 503 with the fallback", i+1, r.status, r.body)
		}
		state = b.State
	}
	if state != "OPEN" || r.header.Get("Retry-After") == "" {
		t.Errorf("breaker %q (Retry-After %q) after the failures, want OPEN with Retry-After", state, r.header.Get("Retry-After"))
	}
}

// consumers lists the consumer names of the group.
func (s *stack) consumers() []string {
	s.t.Helper()
	r := s.mustRedis("redis", nil, "XINFO CONSUMERS "+streamKey(0)+" "+group)
	var names []string
	list, _ := r[0].([]any)
	for _, c := range list {
		if m, ok := c.(map[string]any); ok {
			names = append(names, fmt.Sprint(m["name"]))
		}
	}
	slices.Sort(names)
	return names
}

// pendingOf is how many entries consumer holds unacknowledged.
func (s *stack) pendingOf(consumer string) int {
	s.t.Helper()
	r := s.mustRedis("redis", nil, "XINFO CONSUMERS "+streamKey(0)+" "+group)
	list, _ := r[0].([]any)
	for _, c := range list {
		if m, ok := c.(map[string]any); ok && m["name"] == consumer {
			return toInt(m["pending"])
		}
	}
	return 0
}

// pendingTotal is the group's pending count.
func (s *stack) pendingTotal() int {
	s.t.Helper()
	r := s.mustRedis("redis", nil, "XPENDING "+streamKey(0)+" "+group)
	summary, _ := r[0].([]any)
	if len(summary) == 0 {
		return -1
	}
	return toInt(summary[0])
}

func (s *stack) containerNamed(name string) dockerstack.Container {
	s.t.Helper()
	for _, c := range s.ps() {
		if c.Name == name {
			return c
		}
	}
	return dockerstack.Container{Name: name, State: "gone"}
}

func mustDocker(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := dockerstack.Docker(context.Background(), nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
