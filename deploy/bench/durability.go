package main

// The durability step: what appendfsync always costs beside everysec. Two
// redis-servers (one of each), one api on each, the same single-metric
// ingest (limiter on) at each connection count, in alternating turns so a
// drift in the machine's speed moves both alike. The coalescer makes
// always a group commit: one fsync per script call, for every request
// the call carries.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redisproc"
)

// durabilityRow is one connection count: ingest under always and under
// everysec, measured in the same turns.
type durabilityRow struct {
	always, everysec result
}

// stepDurability measures ingest at o.conns with appendfsync always and
// everysec and keeps the rows in rep.durability.
func stepDurability(ctx context.Context, o options, rep *report) error {
	fmt.Println("bench: durability: single-metric ingest with appendfsync always beside everysec, in alternating turns")
	type side struct {
		addr string
		rdb  *redis.Client
		stop func()
	}
	start := func(fsync string) (side, error) {
		dir, err := os.MkdirTemp("", "ra-bench-"+fsync+"-")
		if err != nil {
			return side{}, err
		}
		srv, err := redisproc.Start(ctx, redisproc.Options{Dir: dir, AOF: true, Fsync: fsync})
		if err != nil {
			_ = os.RemoveAll(dir)
			return side{}, fmt.Errorf("redis (%s): %w", fsync, err)
		}
		addr, err := freeAddr()
		if err != nil {
			_ = srv.Stop()
			_ = os.RemoveAll(dir)
			return side{}, err
		}
		_, port, _ := strings.Cut(addr, ":")
		api, err := startProc("api-"+fsync, filepath.Join(o.bin, "api"), map[string]string{
			"REDIS_URL": srv.URL(), "PORT": port, "RATE_LIMIT_MAX": "1000000000", "RATE_LIMIT_WINDOW": "3600",
			"TRUSTED_PROXIES": "127.0.0.1/32",
		})
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 30 * time.Second})
		stop := func() {
			if api != nil {
				api.stop()
			}
			_ = rdb.Close()
			_ = srv.Stop()
			_ = os.RemoveAll(dir)
		}
		if err != nil {
			stop()
			return side{}, err
		}
		if err := waitHTTP(ctx, "http://"+addr+"/health"); err != nil {
			stop()
			return side{}, err
		}
		return side{addr: addr, rdb: rdb, stop: stop}, nil
	}
	always, err := start(redisproc.FsyncAlways)
	if err != nil {
		return err
	}
	defer always.stop()
	everysec, err := start(redisproc.FsyncEverysec)
	if err != nil {
		return err
	}
	defer everysec.stop()
	spec := func(name string, s side, c int) loadSpec {
		return loadSpec{name: name, addr: s.addr, conns: c, warmup: time.Second, duration: o.duration, items: 1,
			reqs: ingestRequests(s.addr, singleBody), watch: map[string]int{"redis": redisPID(ctx, s.rdb)}}
	}
	for _, c := range o.conns {
		for _, s := range []side{always, everysec} {
			if err := s.rdb.FlushAll(ctx).Err(); err != nil {
				return err
			}
		}
		rs, err := interleave(ctx, os.Stdout, sliceRounds, spec("always", always, c), spec("everysec", everysec, c))
		if err != nil {
			return err
		}
		rep.durability = append(rep.durability, durabilityRow{always: rs[0], everysec: rs[1]})
		fmt.Printf("bench: durability c=%-3d always %8.0f req/s p99 %s | everysec %8.0f req/s p99 %s | always/everysec %s\n",
			c, rs[0].RPS, ms(rs[0].P99), rs[1].RPS, ms(rs[1].P99), ratio(rs[0].RPS, rs[1].RPS))
	}
	return nil
}

// durabilityTable is the report's section for the durability step.
func (r *report) durabilityTable(w func(string, ...any)) {
	if len(r.durability) == 0 {
		return
	}
	w("### Durability: appendfsync always beside everysec, same run\n\n")
	w("Single-metric ingest (limiter on) against two redis-servers, one with `appendfsync always` (what compose and `make run`\n")
	w("use: a 201 survives a crash of Redis or of the host) and one with `everysec`, one api each, in %d alternating turns.\n", sliceRounds)
	w("The coalescer turns always into a group commit: one fsync per script call, for all the requests it carries.\n\n")
	w("| Conns | always | p99 | everysec | p99 | always / everysec | Non-2xx (always, everysec) |\n")
	w("| ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, d := range r.durability {
		w("| %d | %.0f req/s | %s | %.0f req/s | %s | %s | %d, %d |\n", d.always.Conns, d.always.RPS, ms(d.always.P99),
			d.everysec.RPS, ms(d.everysec.P99), ratio(d.always.RPS, d.everysec.RPS), d.always.Errors, d.everysec.Errors)
	}
	w("\n")
}
