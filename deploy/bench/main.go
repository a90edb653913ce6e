// Command bench is `make bench`: it measures the product against the limits
// of the machine it runs on, in one run, and writes docs/benchmarks.md and
// docs/benchmarks.svg.
//
// It starts its own redis-server (AOF on, appendfsync always, as compose
// runs it), then one step after another: the HTTP limit (a bare net/http
// handler, re-executed from this binary), single-metric ingest through
// bin/api with the rate limiter on, batch ingest, cached summary reads, the
// aggregator's drain of 200,000 pre-filled entries (one and two replicas)
// against the apply script's replay limit, the same ingest and drain with
// STREAM_PARTITIONS=4 on a 3-master Redis Cluster (the partitioning and
// routing overhead), redis-benchmark XADD, and ingest under appendfsync
// always beside everysec (durability.go). Redis
// is flushed between steps and the aggregator only runs in its own step.
// Everything stays on loopback and every step is bounded in time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redisproc"
	"github.com/resilientanalytics/ra/pkg/store"
)

type options struct {
	bin, docs, aggDir string
	duration          time.Duration
	conns             []int
	drainEntries      int
	quick             bool
	durabilityOnly    bool
}

func main() {
	var o options
	var conns, serve, serveWait string
	var abBins, abEnvA, abEnvB string
	var ab abOptions
	flag.StringVar(&o.bin, "bin", "bin", "directory with api, aggregator")
	flag.StringVar(&o.docs, "docs", "docs", "where benchmarks.md and benchmarks.svg go")
	flag.StringVar(&o.aggDir, "aggregator-module", "services/aggregator", "aggregator module (for the replay benchmark)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per load step")
	flag.StringVar(&conns, "conns", "16,64,256", "connection counts for the single-metric steps")
	flag.IntVar(&o.drainEntries, "drain", 200_000, "entries pre-filled for the drain step")
	flag.BoolVar(&o.quick, "quick", false, "run only the HTTP limit and the api steps, write no report")
	flag.BoolVar(&o.durabilityOnly, "durability-only", false, "run only the durability step (always beside everysec), write no report")
	flag.StringVar(&serve, "serve-baseline", "", "internal: serve the baseline handler on this address")
	flag.StringVar(&serveWait, "serve-baseline-wait", "", "internal: with -serve-baseline, wait for a shared PING to this Redis address")
	flag.StringVar(&abBins, "ab", "", "A/B mode: two bin dirs `A,B` whose api is loaded on single-metric ingest in alternating turns (no report)")
	flag.StringVar(&abEnvA, "ab-env-a", "", "with -ab: extra environment of api A, `K=V,...`")
	flag.StringVar(&abEnvB, "ab-env-b", "", "with -ab: extra environment of api B, `K=V,...`")
	flag.IntVar(&ab.conns, "ab-conns", 64, "with -ab: connections")
	flag.IntVar(&ab.rounds, "ab-rounds", 10, "with -ab: alternating turns per side (each gets -duration/turns per turn)")
	flag.Parse()
	if serve != "" {
		if err := serveBaseline(serve, serveWait); err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			os.Exit(1)
		}
		return
	}
	for _, c := range strings.Split(conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "bench: -conns:", c, "is not a positive number")
			os.Exit(2)
		}
		o.conns = append(o.conns, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if abBins != "" {
		a, b, ok := strings.Cut(abBins, ",")
		envA, errA := parseEnv(abEnvA)
		envB, errB := parseEnv(abEnvB)
		if !ok || a == "" || b == "" || errA != nil || errB != nil || ab.conns < 1 || ab.rounds < 1 {
			fmt.Fprintln(os.Stderr, "bench: -ab wants two bin dirs A,B; -ab-env-a/-ab-env-b K=V,...; positive -ab-conns and -ab-rounds", errA, errB)
			os.Exit(2)
		}
		ab.binA, ab.binB, ab.envA, ab.envB = a, b, envA, envB
		if err := runAB(ctx, o, ab); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type report struct {
	started  time.Time
	baseline []result
	ingest   []result
	// ingestOff is ingest with INGEST_COALESCE=false, in the same turns.
	ingestOff []result
	batch     result
	summary   result
	// wait is the bare handler that also waits for a shared Redis PING, at
	// 64 connections (see baselineHandler).
	wait result
	// summaryBase is the HTTP limit measured in turns with the summary step.
	summaryBase result
	apiRSS      int64
	drain       [2]drainResult  // one replica, two replicas
	replay      float64         // apply script entries/s, called directly (mean of replayRuns)
	replayRuns  [2]float64      // the replay limit before and after the drains
	xadd        float64         // redis-benchmark XADD, one per round trip
	xaddP16     float64         // redis-benchmark XADD, 16-deep pipelines
	cluster     *clusterResult  // nil when the cluster step did not run
	durability  []durabilityRow // appendfsync always beside everysec (durability.go)
	redisVer    string
	totalTime   time.Duration
}

type drainResult struct {
	replicas int
	entries  int
	took     time.Duration
}

func (d drainResult) rate() float64 {
	if d.took <= 0 {
		return 0
	}
	return float64(d.entries) / d.took.Seconds()
}

func run(ctx context.Context, o options) error {
	rep := &report{started: time.Now()}
	if o.durabilityOnly {
		return stepDurability(ctx, o, rep)
	}
	srv, rdb, stop, err := startRedis(ctx, "ra-bench-")
	if err != nil {
		return err
	}
	defer stop()
	rep.redisVer = redisVersion(ctx, rdb)
	fmt.Printf("bench: redis-server %s on %s (AOF, appendfsync always)\n", rep.redisVer, srv.Addr())

	if err := stepAPI(ctx, o, rep, srv.URL(), rdb); err != nil {
		return err
	}
	if o.quick {
		// Ingest and reads only, no report: for trying a change quickly.
		for _, r := range append(append(append(rep.baseline, rep.ingest...), rep.ingestOff...), rep.wait, rep.batch, rep.summaryBase, rep.summary) {
			fmt.Printf("bench: %-8s c=%-3d %8.0f req/s  %8.0f items/s  p50 %s  p99 %s  non-2xx %d  CPU µs/req %s\n",
				r.Name, r.Conns, r.RPS, r.ItemsPerSec(), ms(r.P50), ms(r.P99), r.Errors, r.cpuString())
		}
		return nil
	}
	if err := stepDrain(ctx, o, rep, srv.URL(), rdb); err != nil {
		return err
	}
	if err := stepCluster(ctx, o, rep, srv.URL(), rdb); err != nil {
		return fmt.Errorf("cluster step: %w", err)
	}
	stepRedisLimits(ctx, o, rep, srv)
	if err := stepDurability(ctx, o, rep); err != nil {
		return fmt.Errorf("durability step: %w", err)
	}
	rep.totalTime = time.Since(rep.started)
	return writeReport(o, rep)
}

// startRedis starts the run's own redis-server (AOF, appendfsync always) in
// a temporary directory and a client to it; stop removes both.
func startRedis(ctx context.Context, prefix string) (*redisproc.Server, *redis.Client, func(), error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, nil, nil, err
	}
	srv, err := redisproc.Start(ctx, redisproc.Options{Dir: dir, AOF: true})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, fmt.Errorf("redis: %w", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 30 * time.Second})
	return srv, rdb, func() { rdb.Close(); srv.Stop(); os.RemoveAll(dir) }, nil
}

func freeAddr() (string, error) {
	p, err := redisproc.FreePort()
	return "127.0.0.1:" + strconv.Itoa(p), err
}

var singleBody = []byte(`{"timestamp":"2026-02-15T10:00:00Z","value":75.5,"type":"cpu_usage"}`)

// ingestRequests gives each worker requests from 256 distinct client IPs
// (X-Forwarded-For through a trusted proxy), so the limiter keys many
// clients as in production.
func ingestRequests(host string, body []byte) func(int) [][]byte {
	return func(w int) [][]byte {
		out := make([][]byte, 256)
		for i := range out {
			xff := fmt.Sprintf("198.18.%d.%d", w%256, i)
			out[i] = rawRequest("POST", host, "/api/metrics", map[string]string{
				"Content-Type": "application/json", "X-Forwarded-For": xff}, body)
		}
		return out
	}
}

// startBaseline serves the HTTP-limit handler from a child process (so its
// CPU is measured apart from the load generator's) and returns the spec that
// loads it at conns connections. With redisAddr set it serves the variant
// that waits for a shared Redis PING (see baselineHandler), named "wait".
func startBaseline(ctx context.Context, o options, redisAddr string) (*proc, func(conns int) loadSpec, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	name, args := "baseline", []string{"-serve-baseline", addr}
	if redisAddr != "" {
		name, args = "wait", append(args, "-serve-baseline-wait", redisAddr)
	}
	p, err := startProc(name, self, nil, args...)
	if err != nil {
		return nil, nil, err
	}
	if err := waitPort(ctx, addr); err != nil {
		p.stop()
		return nil, nil, err
	}
	spec := func(conns int) loadSpec {
		return loadSpec{name: name, addr: addr, conns: conns, warmup: time.Second, duration: o.duration, items: 1,
			reqs: ingestRequests(addr, singleBody), watch: map[string]int{"server": p.pid()}}
	}
	return p, spec, nil
}

// sliceRounds is how many turns interleave gives the HTTP limit and the
// step it is compared with.
const sliceRounds = 4

func stepAPI(ctx context.Context, o options, rep *report, redisURL string, rdb *redis.Client) error {
	api, addr, err := startAPI(ctx, "api", o.bin, redisURL, nil)
	if err != nil {
		return err
	}
	defer api.stop()
	base, baseSpec, err := startBaseline(ctx, o, "")
	if err != nil {
		return err
	}
	defer base.stop()
	wait, waitSpec, err := startBaseline(ctx, o, rdb.Options().Addr)
	if err != nil {
		return err
	}
	defer wait.stop()
	redisPid := redisPID(ctx, rdb)
	watch := map[string]int{"server": api.pid(), "redis": redisPid}
	off, offSpec, err := startCoalesceOff(ctx, o, redisURL, redisPid)
	if err != nil {
		return err
	}
	defer off.stop()
	fmt.Printf("bench: 1+2/6 HTTP limit (bare net/http handler decoding the same JSON) and single-metric ingest\n"+
		"       (limiter on, durable XADD; coalescing on and off), in %d interleaved turns each\n", sliceRounds)
	for _, c := range o.conns {
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			return err
		}
		specs := []loadSpec{baseSpec(c), {name: "ingest", addr: addr, conns: c,
			warmup: time.Second, duration: o.duration, items: 1, reqs: ingestRequests(addr, singleBody), watch: watch},
			offSpec(c)}
		if c == 64 {
			// The reference that only waits on Redis, in the same turns.
			w := waitSpec(c)
			w.watch["redis"] = redisPid
			specs = append(specs, w)
		}
		rs, err := interleave(ctx, os.Stdout, sliceRounds, specs...)
		if err != nil {
			return err
		}
		rep.baseline = append(rep.baseline, rs[0])
		rep.ingest = append(rep.ingest, rs[1])
		rep.ingestOff = append(rep.ingestOff, rs[2])
		if c == 64 {
			rep.wait = rs[3]
		}
	}
	rep.apiRSS = api.peakRSS()

	fmt.Println("bench: 3/6 batch ingest (100 metrics per POST)")
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		return err
	}
	var batch strings.Builder
	batch.WriteString("[")
	for i := range 100 {
		if i > 0 {
			batch.WriteString(",")
		}
		fmt.Fprintf(&batch, `{"timestamp":"2026-02-15T10:%02d:%02dZ","value":%d.5,"type":"cpu_usage"}`, i/60, i%60, i)
	}
	batch.WriteString("]")
	rep.batch, err = loadSpec{name: "batch", addr: addr, conns: 16, warmup: time.Second, duration: o.duration, items: 100,
		reqs: ingestRequests(addr, []byte(batch.String())), watch: watch}.run(ctx, os.Stdout)
	if err != nil {
		return err
	}

	fmt.Println("bench: 4/6 cached summary reads, interleaved with the HTTP limit")
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		return err
	}
	k := store.NewKeys("")
	rdb.HSet(ctx, k.Summary(0, "cpu_usage"), "count", 2, "sum", "151", "min", "75.5", "max", "75.5", "first_ts", 1771149600000000, "last_ts", 1771149600000000)
	get := func(int) [][]byte {
		return [][]byte{rawRequest("GET", addr, "/api/metrics/summary?type=cpu_usage", nil, nil)}
	}
	rs, err := interleave(ctx, os.Stdout, sliceRounds, baseSpec(64),
		loadSpec{name: "summary", addr: addr, conns: 64, warmup: time.Second, duration: o.duration, items: 1, reqs: get, watch: watch})
	if err != nil {
		return err
	}
	rep.summaryBase, rep.summary = rs[0], rs[1]
	return nil
}

// stepDrain measures the drain against the replay limit in turns: replay,
// one replica, two replicas, one replica again, replay again. The ratio
// uses the sums of the two one-replica runs and the mean of the two replay
// runs, so a drift in the machine's speed during the step (20-30% here)
// moves both sides alike.
func stepDrain(ctx context.Context, o options, rep *report, redisURL string, rdb *redis.Client) error {
	fmt.Printf("bench: 5/6 aggregator drain of %d entries, in turns with the replay limit\n", o.drainEntries)
	before := replayLimit(ctx, o)
	var one []drainResult
	for _, replicas := range []int{1, 2, 1} {
		d, err := drainOnce(ctx, o, redisURL, rdb, replicas)
		if err != nil {
			return err
		}
		fmt.Printf("    %d replica(s): %d entries in %s = %.0f entries/s\n", replicas, d.entries, d.took.Round(time.Millisecond), d.rate())
		if replicas == 1 {
			one = append(one, d)
		} else {
			rep.drain[1] = d
		}
	}
	after := replayLimit(ctx, o)
	rep.drain[0] = drainResult{replicas: 1, entries: one[0].entries + one[1].entries, took: one[0].took + one[1].took}
	rep.replayRuns = [2]float64{before, after}
	if before > 0 && after > 0 {
		rep.replay = (before + after) / 2
	} else {
		rep.replay = max(before, after)
	}
	return nil
}

// drainOnce pre-fills the stream and times replicas aggregators from their
// start until every summary count adds up.
func drainOnce(ctx context.Context, o options, redisURL string, rdb *redis.Client, replicas int) (drainResult, error) {
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		return drainResult{}, err
	}
	types, err := prefill(ctx, rdb, o.drainEntries, 1)
	if err != nil {
		return drainResult{}, err
	}
	start := time.Now()
	var aggs []*proc
	defer func() {
		for _, p := range aggs {
			p.stop()
		}
	}()
	for r := range replicas {
		port, err := redisproc.FreePort()
		if err != nil {
			return drainResult{}, err
		}
		p, err := startProc("aggregator", filepath.Join(o.bin, "aggregator"), map[string]string{
			"REDIS_URL": redisURL, "AGG_HEALTH_PORT": strconv.Itoa(port), "CONSUMER_NAME": "bench-" + strconv.Itoa(r)})
		if err != nil {
			return drainResult{}, err
		}
		aggs = append(aggs, p)
	}
	took, err := waitDrained(ctx, rdb, types, o.drainEntries, 1, start)
	if err != nil {
		return drainResult{}, err
	}
	return drainResult{replicas: replicas, entries: o.drainEntries, took: took}, nil
}

// prefill writes n entries round-robin over the streams of partitions
// partitions.
func prefill(ctx context.Context, rdb redis.UniversalClient, n, partitions int) ([]string, error) {
	types := []string{"cpu_usage", "mem_used", "disk_io", "net_rx", "net_tx", "latency_ms", "queue_depth", "errors"}
	k := store.NewKeys("")
	// Within the last hour, so the aggregator also folds every entry into
	// its per-minute bucket, as it does for live traffic.
	base := time.Now().UTC().Add(-time.Hour)
	for done := 0; done < n; {
		pipe := rdb.Pipeline()
		for j := 0; j < 1000 && done < n; j, done = j+1, done+1 {
			m := metric.Metric{Timestamp: base.Add(time.Duration(done%3_600_000) * time.Millisecond), Value: float64(done % 100), Type: types[done%len(types)]}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: k.Stream(done % partitions), Values: store.EntryFields(m)})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("prefill: %w", err)
		}
	}
	return types, nil
}

// waitDrained waits until the summary counts of every type, summed over
// partitions partitions, reach want.
func waitDrained(ctx context.Context, rdb redis.UniversalClient, types []string, want, partitions int, start time.Time) (time.Duration, error) {
	k := store.NewKeys("")
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.StringCmd, 0, len(types)*partitions)
		for _, t := range types {
			for p := range partitions {
				cmds = append(cmds, pipe.HGet(ctx, k.Summary(p, t), "count"))
			}
		}
		_, _ = pipe.Exec(ctx)
		total := 0
		for _, c := range cmds {
			n, _ := strconv.Atoi(c.Val())
			total += n
		}
		if total >= want {
			if total != want {
				return 0, fmt.Errorf("drain counted %d entries, %d were written", total, want)
			}
			return time.Since(start), nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, errors.New("drain did not finish within 2 minutes")
}

// replayLimit runs the aggregator's replay harness (BenchmarkDrain): several
// goroutines loop XREADGROUP + one apply.lua call per batch of 256 on a
// pre-filled stream as fast as Redis answers. It reports replay_metrics/s.
func replayLimit(ctx context.Context, o options) float64 {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^BenchmarkDrain$", "-benchtime", "1x", "./internal/consumer")
	cmd.Dir = o.aggDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		fmt.Printf("    replay benchmark failed: %v\n%s\n", err, out)
		return 0
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		var replay, inProc float64
		for i := 1; i < len(f); i++ {
			switch f[i] {
			case "replay_metrics/s":
				replay, _ = strconv.ParseFloat(f[i-1], 64)
			case "agg/replay":
				inProc, _ = strconv.ParseFloat(f[i-1], 64)
			}
		}
		if replay > 0 {
			fmt.Printf("    replay limit (apply script called directly): %.0f entries/s; in that benchmark's own process the consumer drained at %.2f of it\n", replay, inProc)
			return replay
		}
	}
	fmt.Printf("    replay benchmark printed no replay_metrics/s:\n%s\n", out)
	return 0
}

func stepRedisLimits(ctx context.Context, o options, rep *report, srv *redisproc.Server) {
	fmt.Println("bench: 6/6 Redis limits (redis-benchmark XADD)")
	_, port, _ := strings.Cut(srv.Addr(), ":")
	rb := func(extra ...string) float64 {
		args := append([]string{"-p", port, "-n", "200000", "-c", "64", "--csv"}, extra...)
		args = append(args, "XADD", "rb:stream", "*", "type", "cpu_usage", "value", "75.5", "ts", "1771149600000000")
		out, err := exec.CommandContext(ctx, "redis-benchmark", args...).Output()
		if err != nil {
			fmt.Println("    redis-benchmark:", err)
			return 0
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		f := strings.Split(lines[len(lines)-1], ",")
		if len(f) < 2 {
			return 0
		}
		v, _ := strconv.ParseFloat(strings.Trim(f[1], `"`), 64)
		return v
	}
	rep.xadd = rb()
	rep.xaddP16 = rb("-P", "16")
	fmt.Printf("    XADD %.0f/s, pipelined x16 %.0f/s\n", rep.xadd, rep.xaddP16)
}

func redisVersion(ctx context.Context, rdb *redis.Client) string {
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			return v
		}
	}
	return "?"
}

func waitPort(ctx context.Context, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := (&netDialer).DialContext(ctx, "tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not open within 10s", addr)
}
