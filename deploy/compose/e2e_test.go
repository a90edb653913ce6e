package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/deploy/compose/internal/stacktest"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
)

// TestStackAsComposeRunsIt starts the stack as processes, each with exactly
// the environment the compose file gives its container (only REDIS_URL and
// the ports differ), waits for health with the healthcheck binary called as
// the compose healthchecks call it, and walks the README scenario.
func TestStackAsComposeRunsIt(t *testing.T) {
	bins := stacktest.Build(t)
	rds := redistest.Start(t)
	apiPort := stacktest.FreePort(t)

	// The only host variable besides the ports: the simulator always fails,
	// so the breaker trips deterministically.
	host := func(aggPort int) map[string]string {
		return map[string]string{
			"EXTERNAL_FAILURE_RATE": "1",
			"PORT":                  strconv.Itoa(apiPort),
			"AGG_HEALTH_PORT":       strconv.Itoa(aggPort),
		}
	}
	type member struct {
		svc  types.ServiceConfig
		proc *stacktest.Proc
	}
	start := func(name, service, bin string, aggPort int) member {
		p := loadProject(t, composeFile, host(aggPort))
		svc := p.Services[service]
		env := environment(svc)
		env["REDIS_URL"] = rds.URL()
		return member{svc: svc, proc: stacktest.Run(t, name, bin, env)}
	}
	api := start("api", "api", bins.API, stacktest.FreePort(t))
	aggs := []member{
		start("aggregator-1", "aggregator", bins.Aggregator, stacktest.FreePort(t)),
		start("aggregator-2", "aggregator", bins.Aggregator, stacktest.FreePort(t)),
	}
	for _, m := range append([]member{api}, aggs...) {
		test := m.svc.HealthCheck.Test
		if len(test) < 3 || test[0] != "CMD" || test[1] != "/healthcheck" {
			t.Fatalf("%s healthcheck %q: want [CMD /healthcheck URL...]", m.svc.Name, test)
		}
		stacktest.WaitHealthy(t, bins.Healthcheck, test[2:], m.proc, 30*time.Second)
	}

	base := "http://127.0.0.1:" + strconv.Itoa(apiPort)
	env := environment(api.svc)
	k := store.NewKeys(env["STREAM_KEY"])
	rdb := rds.Client(t)
	c := &http.Client{Timeout: 10 * time.Second}
	now := time.Now().UTC().Truncate(time.Second)
	var requests int // POSTs that count against the rate limit

	t.Run("POST a metric is 201", func(t *testing.T) {
		resp, body := do(t, c, http.MethodPost, base+"/api/metrics",
			fmt.Sprintf(`{"timestamp":%q,"value":75,"type":"e2e_cpu"}`, now.Format(time.RFC3339)))
		requests++
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("status %d, body %s", resp.StatusCode, body)
		}
		var got struct{ ID, Type string }
		if err := json.Unmarshal(body, &got); err != nil || got.ID == "" || got.Type != "e2e_cpu" {
			t.Errorf("body %s: want {id, type:e2e_cpu} (%v)", body, err)
		}
		if resp.Header.Get("X-Request-ID") == "" {
			t.Error("no X-Request-ID")
		}
	})

	t.Run("a batch is aggregated exactly once by two aggregators", func(t *testing.T) {
		batch := fmt.Sprintf(`[{"timestamp":%[1]q,"value":10,"type":"e2e_mem"},{"timestamp":%[1]q,"value":20,"type":"e2e_mem"},{"timestamp":%[1]q,"value":60,"type":"e2e_mem"}]`,
			now.Format(time.RFC3339))
		resp, body := do(t, c, http.MethodPost, base+"/api/metrics", batch)
		requests++
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("batch status %d, body %s", resp.StatusCode, body)
		}
		// Wait in Redis (not through the api: a summary read too early
		// would be cached for CACHE_TTL).
		for _, w := range []struct {
			typ   string
			count int64
		}{{"e2e_cpu", 1}, {"e2e_mem", 3}} {
			waitCount(t, rdb, k.Summary(0, w.typ), w.count, 20*time.Second)
		}
		for _, w := range []struct {
			typ           string
			count         int64
			avg, min, max float64
		}{{"e2e_cpu", 1, 75, 75, 75}, {"e2e_mem", 3, 30, 10, 60}} {
			resp, body := do(t, c, http.MethodGet, base+"/api/metrics/summary?type="+w.typ, "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("summary %s: status %d, body %s", w.typ, resp.StatusCode, body)
			}
			var raw map[string]any
			if err := json.Unmarshal(body, &raw); err != nil {
				t.Fatalf("summary %s: %v in %s", w.typ, err, body)
			}
			var s struct {
				Type              string
				Count             int64
				Average, Min, Max float64
			}
			s.Type, _ = raw["type"].(string)
			s.Count = int64(num(raw["count"]))
			s.Average, s.Min, s.Max = num(raw["average_value"]), num(raw["min_value"]), num(raw["max_value"])
			if s.Type != w.typ || s.Count != w.count || math.Abs(s.Average-w.avg) > 1e-9 || s.Min != w.min || s.Max != w.max {
				t.Errorf("summary %s = %s; want count %d, average_value %v, min %v, max %v", w.typ, body, w.count, w.avg, w.min, w.max)
			}
			for _, f := range []string{"sum", "first_timestamp", "last_timestamp"} {
				if _, ok := raw[f]; !ok {
					t.Errorf("summary %s lacks %q: %s", w.typ, f, body)
				}
			}
		}
		group := environment(aggs[0].svc)["CONSUMER_GROUP"]
		consumers, err := rdb.XInfoConsumers(context.Background(), k.Stream(0), group).Result()
		if err != nil || len(consumers) != 2 {
			t.Errorf("consumers in the group = %+v (%v), want the two aggregators", consumers, err)
		}
	})

	t.Run("the 6th POST within the window is 429 with Retry-After", func(t *testing.T) {
		limit, _ := strconv.Atoi(env["RATE_LIMIT_MAX"])
		window, _ := time.ParseDuration(env["RATE_LIMIT_WINDOW"])
		if limit != 5 || window != time.Minute {
			t.Fatalf("compose gives RATE_LIMIT_MAX=%q RATE_LIMIT_WINDOW=%q, want the documented 5 per 60s", env["RATE_LIMIT_MAX"], env["RATE_LIMIT_WINDOW"])
		}
		metric := fmt.Sprintf(`{"timestamp":%q,"value":1,"type":"e2e_rl"}`, now.Format(time.RFC3339))
		for requests < limit {
			resp, body := do(t, c, http.MethodPost, base+"/api/metrics", metric)
			requests++
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("POST #%d: status %d, body %s", requests, resp.StatusCode, body)
			}
		}
		before, _ := rdb.XLen(context.Background(), k.Stream(0)).Result()
		resp, body := do(t, c, http.MethodPost, base+"/api/metrics", metric)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("POST #%d: status %d, want 429; body %s", limit+1, resp.StatusCode, body)
		}
		ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || ra < 1 || ra > 60 {
			t.Errorf("Retry-After %q, want whole seconds in 1..60", resp.Header.Get("Retry-After"))
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			t.Errorf("429 Content-Type %q, want application/problem+json", ct)
		}
		if resp.Header.Get("RateLimit-Policy") == "" || resp.Header.Get("RateLimit") == "" {
			t.Errorf("429 lacks RateLimit-Policy/RateLimit headers: %v", resp.Header)
		}
		if after, _ := rdb.XLen(context.Background(), k.Stream(0)).Result(); after != before {
			t.Errorf("stream grew from %d to %d on a 429", before, after)
		}
	})

	t.Run("external-data trips OPEN and answers the fallback", func(t *testing.T) {
		threshold, _ := strconv.Atoi(env["CIRCUIT_FAILURE_THRESHOLD"])
		var last map[string]any
		var resp *http.Response
		for i := 0; i <= threshold+1; i++ {
			var body []byte
			resp, body = do(t, c, http.MethodGet, base+"/api/external-data", "")
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("call %d: status %d with EXTERNAL_FAILURE_RATE=1, want 503; body %s", i+1, resp.StatusCode, body)
			}
			last = map[string]any{}
			if err := json.Unmarshal(body, &last); err != nil {
				t.Fatalf("call %d: body %s: %v", i+1, body, err)
			}
			if last["circuit_state"] == "OPEN" {
				break
			}
		}
		if last["circuit_state"] != "OPEN" {
			t.Fatalf("circuit_state %v after %d failures, want OPEN", last["circuit_state"], threshold+2)
		}
		if last["message"] != "Fallback response: External service unavailable" {
			t.Errorf("message %q, want the fallback", last["message"])
		}
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("OPEN fallback Retry-After %q, want >= 1s", resp.Header.Get("Retry-After"))
		}
		resp, body := do(t, c, http.MethodGet, base+"/api/external-data/circuit", "")
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"OPEN"`)) {
			t.Errorf("/api/external-data/circuit: %d %s, want 200 OPEN", resp.StatusCode, body)
		}
	})

	t.Run("SIGTERM stops everything with exit 0", func(t *testing.T) {
		procs := []*stacktest.Proc{api.proc, aggs[0].proc, aggs[1].proc}
		for _, p := range procs {
			if err := p.Signal(syscall.SIGTERM); err != nil {
				t.Error(err)
			}
		}
		for _, p := range procs {
			select {
			case <-p.Done():
				if code := p.ExitCode(); code != 0 {
					t.Errorf("%s exit code %d after SIGTERM, want 0", p.Name(), code)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("%s still running 20s after SIGTERM", p.Name())
			}
		}
		// Consumers delete themselves when they have nothing pending.
		group := environment(aggs[0].svc)["CONSUMER_GROUP"]
		if cs, err := rdb.XInfoConsumers(context.Background(), k.Stream(0), group).Result(); err == nil && len(cs) != 0 {
			t.Errorf("consumers left in the group after a clean stop: %+v", cs)
		}
	})
}

// do sends one request (JSON body when body != "") and reads the answer.
func do(t *testing.T, c *http.Client, method, url, body string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, b
}

// waitCount polls the summary hash until its count reaches want, and fails
// if it goes past (that would be a double count).
func waitCount(t *testing.T, rdb *redis.Client, key string, want int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got store.Summary
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		h, err := rdb.HGetAll(ctx, key).Result()
		cancel()
		if err == nil {
			if got, _, err = store.SummaryFromHash(h); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			switch {
			case got.Count == want:
				// Stay a moment: a second aggregator counting it again
				// would show now.
				time.Sleep(300 * time.Millisecond)
				h, _ := rdb.HGetAll(context.Background(), key).Result()
				if again, _, _ := store.SummaryFromHash(h); again.Count != want {
					t.Fatalf("%s: count %d after reaching %d: counted twice", key, again.Count, want)
				}
				return
			case got.Count > want:
				t.Fatalf("%s: count %d, want %d: counted twice", key, got.Count, want)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: count %d after %s, want %d (is an aggregator consuming?)", key, got.Count, timeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}
