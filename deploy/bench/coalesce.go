package main

import (
	"context"
	"time"
)

// coalesceOffName names the ingest load on the api started with
// INGEST_COALESCE=false.
const coalesceOffName = "ingest-nocoalesce"

// startCoalesceOff starts a second api, the same binary with the request
// coalescer off (every request its own append script call), and returns
// the spec that loads it at conns connections; stepAPI measures it in the
// same turns as the default api, so the on/off ratio is not moved by the
// machine's drift.
func startCoalesceOff(ctx context.Context, o options, redisURL string, redisPid int) (*proc, func(conns int) loadSpec, error) {
	p, addr, err := startAPI(ctx, "api-nocoalesce", o.bin, redisURL, map[string]string{"INGEST_COALESCE": "false"})
	if err != nil {
		return nil, nil, err
	}
	spec := func(conns int) loadSpec {
		return loadSpec{name: coalesceOffName, addr: addr, conns: conns, warmup: time.Second, duration: o.duration, items: 1,
			reqs: ingestRequests(addr, singleBody), watch: map[string]int{"server": p.pid(), "redis": redisPid}}
	}
	return p, spec, nil
}

// coalesceTable writes a row per connection count: ingest with the
// coalescer on (the default) and off, measured in the same turns.
func (r *report) coalesceTable(w func(string, ...any)) {
	if len(r.ingestOff) == 0 {
		return
	}
	on := map[int]result{}
	for _, x := range r.ingest {
		on[x.Conns] = x
	}
	w("### Request coalescing on and off, same turns\n\n")
	w("Single-metric ingest through two api processes of the same binary, `INGEST_COALESCE=true` (the default: concurrent\n")
	w("requests share one append script call) and `false` (one call per request), measured in the same %d alternating turns\n", sliceRounds)
	w("as the HTTP limit. Ratio = throughput on / off.\n\n")
	w("| Conns | on | p99 on | server CPU µs/req on | off | p99 off | server CPU µs/req off | Ratio on/off |\n")
	w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, off := range r.ingestOff {
		x := on[off.Conns]
		w("| %d | %.0f req/s | %s | %.1f | %.0f req/s | %s | %.1f | %s |\n", off.Conns, x.RPS, ms(x.P99), x.CPU["server"],
			off.RPS, ms(off.P99), off.CPU["server"], ratio(x.RPS, off.RPS))
	}
	w("\n")
}
