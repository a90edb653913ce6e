package compose

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/deploy/compose/internal/stacktest"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
)

// chaosConfig is the size of the fault run: a few seconds of load by
// default (make test), CHAOS_DURATION and CHAOS_CLIENTS for `make chaos`.
type chaosConfig struct {
	duration time.Duration
	clients  int
}

func loadChaosConfig(t *testing.T) chaosConfig {
	c := chaosConfig{duration: 6 * time.Second, clients: 8}
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 3*time.Second {
			t.Fatalf("CHAOS_DURATION=%q: want a duration >= 3s", v)
		}
		c.duration = d
	}
	if v := os.Getenv("CHAOS_CLIENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 512 {
			t.Fatalf("CHAOS_CLIENTS=%q: want 1..512", v)
		}
		c.clients = n
	}
	return c
}

// chaosStats are the clients' figures, for the log and docs/operations.md.
type chaosStats struct {
	requests, created, replayed, retries             atomic.Int64
	unavailable, outcomeUnknown, transport, other503 atomic.Int64
}

// tally is what the clients got a 201 for, per type.
type tally struct {
	mu    sync.Mutex
	count map[string]int64
	sum   map[string]float64
}

func (t *tally) add(typ string, n int64, sum float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count[typ] += n
	t.sum[typ] += sum
}

// TestChaosExactlyOnce is the end-to-end promise under faults: the api and
// two aggregators against a real redis-server (AOF, appendfsync always),
// concurrent clients that retry each request with its Idempotency-Key
// until a 201 or a 4xx, while an aggregator is SIGKILLed (and started
// again), Redis is SIGKILLed and restarted from its AOF, and Redis is
// frozen (SIGSTOP) past the api's read timeout and thawed. At the end
// every type's summary count and sum equal what the clients got a 201 for:
// nothing lost, nothing counted twice; nothing is pending and the
// aggregators report lag 0.
func TestChaosExactlyOnce(t *testing.T) {
	cfg := loadChaosConfig(t)
	began := time.Now()
	bins := stacktest.Build(t)
	t.Logf("chaos: built in %s", time.Since(began).Round(time.Second))
	rds := redistest.StartWith(t, redistest.Options{AOF: true}) // appendfsync always
	rds.RequireReal(t)
	apiPort := stacktest.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(apiPort)

	p := loadProject(t, composeFile, nil)
	apiEnv := environment(service(t, p, "api"))
	apiEnv["REDIS_URL"] = rds.URL()
	apiEnv["PORT"] = strconv.Itoa(apiPort)
	apiEnv["RATE_LIMIT_ENABLED"] = "false" // the quota is not under test; 429s would end requests
	apiEnv["LOG_LEVEL"] = "error"
	api := stacktest.Run(t, "api", bins.API, apiEnv)

	aggEnv := func(port int) map[string]string {
		env := environment(service(t, p, "aggregator"))
		env["REDIS_URL"] = rds.URL()
		env["AGG_HEALTH_PORT"] = strconv.Itoa(port)
		env["AGG_BLOCK"] = "200ms"
		// The SIGKILLed aggregator's pending entries are claimed soon.
		env["AGG_CLAIM_INTERVAL"] = "500ms"
		env["AGG_CLAIM_MIN_IDLE"] = "2s"
		env["LOG_LEVEL"] = "error"
		return env
	}
	aggPorts := []int{stacktest.FreePort(t), stacktest.FreePort(t)}
	aggs := []*stacktest.Proc{
		stacktest.Run(t, "aggregator-1", bins.Aggregator, aggEnv(aggPorts[0])),
		stacktest.Run(t, "aggregator-2", bins.Aggregator, aggEnv(aggPorts[1])),
	}
	stacktest.WaitHealthy(t, bins.Healthcheck, []string{base + "/health"}, api, 30*time.Second)
	for i, a := range aggs {
		stacktest.WaitHealthy(t, bins.Healthcheck, []string{fmt.Sprintf("http://127.0.0.1:%d/health", aggPorts[i])}, a, 30*time.Second)
	}

	t.Logf("chaos: stack healthy at %s", time.Since(began).Round(100*time.Millisecond))
	var st chaosStats
	sent := &tally{count: map[string]int64{}, sum: map[string]float64{}}
	loadCtx, stopLoad := context.WithTimeout(context.Background(), cfg.duration)
	defer stopLoad()
	// A started request is retried until it gets its answer, also after
	// the load ends, within this bound.
	hardCtx, stopHard := context.WithTimeout(context.Background(), cfg.duration+90*time.Second)
	defer stopHard()
	var wg sync.WaitGroup
	failures := make(chan string, cfg.clients)
	for c := range cfg.clients {
		wg.Go(func() {
			if msg := chaosClient(loadCtx, hardCtx, base, c, &st, sent); msg != "" {
				failures <- msg
			}
		})
	}

	// The faults, spread over the load. Each recovery is the time from the
	// fault (or the restart) until a fresh request gets a 201 again.
	type recovery struct {
		fault string
		took  time.Duration
	}
	var recoveries []recovery
	probe := func(fault string, from time.Time) {
		took, err := untilCreated(hardCtx, base, from)
		if err != nil {
			t.Errorf("%s: no 201 afterwards: %v", fault, err)
			return
		}
		recoveries = append(recoveries, recovery{fault, took})
	}
	step := cfg.duration / 4
	sleepCtx(loadCtx, step)

	killed := time.Now()
	if err := aggs[0].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-aggs[0].Done()
	aggs[0] = stacktest.Run(t, "aggregator-1 (restarted)", bins.Aggregator, aggEnv(aggPorts[0]))
	probe("aggregator SIGKILL", killed)
	sleepCtx(loadCtx, step-time.Since(killed))

	killed = time.Now()
	rds.Kill(t)
	rds.Restart(t) // reloads the AOF
	probe("Redis SIGKILL + restart from the AOF", killed)
	sleepCtx(loadCtx, step-time.Since(killed))

	frozen := time.Now()
	rds.Pause(t)
	time.Sleep(1500 * time.Millisecond) // past REDIS_READ_TIMEOUT (1s)
	rds.Resume(t)
	probe("Redis SIGSTOP 1.5s + SIGCONT", frozen)

	<-loadCtx.Done()
	wg.Wait()
	close(failures)
	for msg := range failures {
		t.Error(msg)
	}
	if t.Failed() {
		return
	}

	// Everything answered 201 must be in the summaries exactly once.
	rdb := rds.Client(t)
	k := store.NewKeys(apiEnv["STREAM_KEY"])
	drained := time.Now()
	deadline := drained.Add(60 * time.Second)
	for {
		var diff []string
		for typ, want := range sent.count {
			h, err := rdb.HGetAll(context.Background(), k.Summary(0, typ)).Result()
			if err != nil {
				diff = append(diff, fmt.Sprintf("%s: %v", typ, err))
				continue
			}
			got, _, err := store.SummaryFromHash(h)
			if err != nil {
				t.Fatalf("%s: %v", typ, err)
			}
			if got.Count > want {
				t.Fatalf("%s: count %d, clients got 201s for %d: counted twice", typ, got.Count, want)
			}
			if got.Count != want || math.Abs(got.Sum-sent.sum[typ]) > 1e-6 {
				diff = append(diff, fmt.Sprintf("%s: count %d sum %v, want %d and %v", typ, got.Count, got.Sum, want, sent.sum[typ]))
			}
		}
		if len(diff) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("summaries after 60s: %s", strings.Join(diff, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
	drainTook := time.Since(drained)

	// Nothing pending, lag 0 on both aggregators (their lag is counted, so
	// it returns to 0 also after the restart from the AOF).
	group := environment(service(t, p, "aggregator"))["CONSUMER_GROUP"]
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		pend, err := rdb.XPending(context.Background(), k.Stream(0), group).Result()
		lags := make([]string, len(aggPorts))
		settled := err == nil && pend.Count == 0
		for i, port := range aggPorts {
			lag, pending := aggHealth(port)
			lags[i] = fmt.Sprintf("lag %s pending %s", lag, pending)
			settled = settled && lag == "0" && pending == "0"
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled 30s after the summaries matched: XPENDING %+v (%v); aggregators: %v", pend, err, lags)
		}
	}

	var total int64
	types := make([]string, 0, len(sent.count))
	for typ, n := range sent.count {
		total += n
		types = append(types, typ)
	}
	slices.Sort(types)
	t.Logf("chaos: %d clients for %s; %d requests (%d metrics of %d types), %d answered 201 (%d of them replays), %d retries; 503 store-unavailable %d, 503 write-outcome-unknown %d, other 503 %d, transport errors %d; lost 0, duplicated 0",
		cfg.clients, cfg.duration, st.requests.Load(), total, len(types), st.created.Load(), st.replayed.Load(), st.retries.Load(),
		st.unavailable.Load(), st.outcomeUnknown.Load(), st.other503.Load(), st.transport.Load())
	for _, r := range recoveries {
		t.Logf("chaos: recovery after %s: %s", r.fault, r.took.Round(10*time.Millisecond))
	}
	t.Logf("chaos: summaries exact %s after the load ended; settled (nothing pending, lag 0) at %s", drainTook.Round(10*time.Millisecond), time.Since(began).Round(100*time.Millisecond))
	t.Cleanup(func() { t.Logf("chaos: stopped at %s", time.Since(began).Round(100*time.Millisecond)) })
	if st.created.Load() != st.requests.Load() {
		t.Errorf("%d requests but %d 201s: every request must end in a 201", st.requests.Load(), st.created.Load())
	}
}

// chaosClient sends batches until load ends; each one with its own
// Idempotency-Key, retried with the same key and body until a 201 (then
// counted as sent) or a 4xx (a failure: nothing in this run may be
// refused). It returns a failure message or "".
func chaosClient(load, hard context.Context, base string, id int, st *chaosStats, sent *tally) string {
	hc := &http.Client{Timeout: 5 * time.Second}
	for seq := 0; load.Err() == nil; seq++ {
		typ := fmt.Sprintf("chaos_%d", (id+seq)%4)
		n := 1 + (id+seq)%5
		var body bytes.Buffer
		body.WriteByte('[')
		var sum float64
		ts := time.Now().UTC().Format(time.RFC3339Nano)
		for i := range n {
			v := float64((id*7+seq*3+i)%100 + 1)
			sum += v
			if i > 0 {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, `{"timestamp":%q,"value":%g,"type":%q}`, ts, v, typ)
		}
		body.WriteByte(']')
		key := newKey()
		st.requests.Add(1)
		for attempt := 0; ; attempt++ {
			if hard.Err() != nil {
				return fmt.Sprintf("client %d: request %s got no 201 before the hard deadline", id, key)
			}
			if attempt > 0 {
				st.retries.Add(1)
			}
			status, problem, replayed, err := post(hard, hc, base, key, body.Bytes())
			switch {
			case err != nil:
				st.transport.Add(1)
			case status == http.StatusCreated:
				st.created.Add(1)
				if replayed {
					st.replayed.Add(1)
				}
				sent.add(typ, int64(n), sum)
			case status == http.StatusServiceUnavailable && strings.HasSuffix(problem, "/store-unavailable"):
				st.unavailable.Add(1)
			case status == http.StatusServiceUnavailable && strings.HasSuffix(problem, "/write-outcome-unknown"):
				st.outcomeUnknown.Add(1)
			case status == http.StatusServiceUnavailable:
				st.other503.Add(1)
			default:
				return fmt.Sprintf("client %d: request %s answered %d %s", id, key, status, problem)
			}
			if err == nil && status == http.StatusCreated {
				break
			}
			sleepCtx(hard, 100*time.Millisecond)
		}
	}
	return ""
}

func post(ctx context.Context, hc *http.Client, base, key string, body []byte) (status int, problem string, replayed bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/metrics", bytes.NewReader(body))
	if err != nil {
		return 0, "", false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", `"`+key+`"`)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", false, err
	}
	var p struct{ Type string }
	if resp.StatusCode != http.StatusCreated {
		_ = json.Unmarshal(b, &p)
	}
	return resp.StatusCode, p.Type, resp.Header.Get("Idempotent-Replayed") == "true", nil
}

// untilCreated posts a probe metric until it gets a 201 and returns the
// time since from.
func untilCreated(ctx context.Context, base string, from time.Time) (time.Duration, error) {
	hc := &http.Client{Timeout: 2 * time.Second}
	body := []byte(`{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"chaos_probe"}`)
	key := newKey()
	for ctx.Err() == nil {
		if status, _, _, err := post(ctx, hc, base, key, body); err == nil && status == http.StatusCreated {
			return time.Since(from), nil
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
	return 0, ctx.Err()
}

// aggHealth returns an aggregator's /health lag and pending as text
// ("" when it does not answer).
func aggHealth(port int) (lag, pending string) {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/health", port))
	if err != nil {
		return "", ""
	}
	defer resp.Body.Close()
	var r struct {
		Lag     any `json:"lag"`
		Pending any `json:"pending"`
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil {
		return "", ""
	}
	return fmt.Sprint(r.Lag), fmt.Sprint(r.Pending)
}

func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sleepCtx sleeps d, or less when ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
