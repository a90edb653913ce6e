package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// abOptions is the -ab mode: two api builds (or one build with two
// environments) loaded on the same step in alternating turns.
type abOptions struct {
	binA, binB string
	envA, envB map[string]string
	conns      int
	rounds     int
}

// parseEnv reads "K=V,K2=V2" (empty: none).
func parseEnv(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not KEY=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}

// abResult is one A/B comparison.
type abResult struct {
	a, b   result
	rounds int
}

// throughputRatio is B's throughput over A's: below 1, B (the plain code)
// is slower and A's trick pays.
func (r abResult) throughputRatio() float64 {
	if r.a.RPS <= 0 {
		return 0
	}
	return r.b.RPS / r.a.RPS
}

// cpuRatio is B's server CPU per request over A's.
func (r abResult) cpuRatio() float64 {
	if r.a.CPU["server"] <= 0 {
		return 0
	}
	return r.b.CPU["server"] / r.a.CPU["server"]
}

func (r abResult) String() string {
	line := func(name string, x result) string {
		return fmt.Sprintf("    %s: %8.0f req/s  p50 %s  p99 %s  non-2xx %d  CPU µs/req %s\n",
			name, x.RPS, ms(x.P50), ms(x.P99), x.Errors, x.cpuString())
	}
	return fmt.Sprintf("bench -ab: ingest, 1 metric, %d conns, %d alternating turns each\n", r.a.Conns, r.rounds) +
		line("A", r.a) + line("B", r.b) +
		fmt.Sprintf("    B/A throughput %.3f, B/A server CPU per request %.3f\n", r.throughputRatio(), r.cpuRatio())
}

// runAB measures single-metric ingest through api A and api B, each its
// own process on the same Redis, in ab.rounds alternating turns (the
// machine's drift moves both alike), and prints both results and the B/A
// ratios of throughput and of the api's CPU per request.
func runAB(ctx context.Context, o options, ab abOptions) error {
	srv, rdb, stop, err := startRedis(ctx, "ra-bench-ab-")
	if err != nil {
		return err
	}
	defer stop()
	redisPid := redisPID(ctx, rdb)
	specs := make([]loadSpec, 2)
	for i, side := range []struct {
		name, bin string
		env       map[string]string
	}{{"A", ab.binA, ab.envA}, {"B", ab.binB, ab.envB}} {
		p, addr, err := startAPI(ctx, "api-"+side.name, side.bin, srv.URL(), side.env)
		if err != nil {
			return fmt.Errorf("api %s: %w", side.name, err)
		}
		defer p.stop()
		specs[i] = loadSpec{name: side.name, addr: addr, conns: ab.conns, warmup: time.Second, duration: o.duration, items: 1,
			reqs: ingestRequests(addr, singleBody), watch: map[string]int{"server": p.pid(), "redis": redisPid}}
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		return err
	}
	fmt.Printf("bench -ab: A = %s/api %v, B = %s/api %v\n", ab.binA, ab.envA, ab.binB, ab.envB)
	rs, err := interleave(ctx, os.Stdout, ab.rounds, specs...)
	if err != nil {
		return err
	}
	fmt.Print(abResult{a: rs[0], b: rs[1], rounds: ab.rounds})
	return nil
}
