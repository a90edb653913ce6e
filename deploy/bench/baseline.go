package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
)

// baselineHandler is the HTTP limit of this machine: a bare net/http
// handler that decodes the same JSON the api takes and answers 201, with no
// validation, no Redis and no middleware. Everything the api does costs
// throughput relative to it; the ratio is what the benchmarks track.
//
// With wait set, the handler also waits, after decoding, for one Redis PING
// shared by every request that queued meanwhile (one goroutine sends a PING
// per batch, as the api sends one script call per batch). That variant is
// not a design but a reference: it prices waiting on Redis at all (the
// goroutine hand-offs, net/http's background read while a handler waits,
// the round trip), with no script, no limiter and none of the api's code.
func baselineHandler(wait func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Timestamp string  `json:"timestamp"`
			Value     float64 `json:"value"`
			Type      string  `json:"type"`
		}
		body, err := io.ReadAll(r.Body)
		if err != nil || json.Unmarshal(body, &m) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if wait != nil {
			wait()
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"0-0","type":"` + m.Type + `"}`))
	})
}

// serveBaseline serves the HTTP-limit handler until the process is killed;
// with redisAddr set, the variant that waits for a shared PING.
func serveBaseline(addr, redisAddr string) error {
	var wait func()
	if redisAddr != "" {
		wait = pingBatcher(redis.NewClient(&redis.Options{Addr: redisAddr}))
	}
	srv := &http.Server{Addr: addr, Handler: baselineHandler(wait), ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
}

// pingBatcher returns a wait that blocks until a PING sent after the call
// queued has been answered; one goroutine sends one PING for everything
// queued while the previous one was in flight.
func pingBatcher(rdb *redis.Client) func() {
	queue := make(chan chan struct{}, 4096)
	go func() {
		var batch []chan struct{}
		for first := range queue {
			batch = append(batch[:0], first)
		drain:
			for {
				select {
				case c := <-queue:
					batch = append(batch, c)
				default:
					break drain
				}
			}
			_ = rdb.Ping(context.Background()).Err()
			for _, c := range batch {
				c <- struct{}{}
			}
		}
	}()
	return func() {
		done := make(chan struct{}, 1)
		queue <- done
		<-done
	}
}
