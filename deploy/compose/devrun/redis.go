package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/redisproc"
	"github.com/resilientanalytics/ra/pkg/store"
)

// Redis modes (-redis).
const (
	modeAuto     = "auto"     // use REDIS_URL if it answers, else start one
	modeServer   = "server"   // always start a redis-server for the session
	modeEmbedded = "embedded" // always start an embedded miniredis
)

// sessionRedis is the Redis the services talk to, and how to stop it when
// devrun started it.
type sessionRedis struct {
	URL string
	// Owned is true when devrun started it (and stops it last).
	Owned bool
	stop  func() error
}

// Stop stops a Redis devrun started; an external one is left alone.
func (r sessionRedis) Stop() error {
	if r.stop == nil {
		return nil
	}
	return r.stop()
}

// quietLogger drops go-redis' own log lines: devrun reports a failed ping
// itself, in one line.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func init() { redis.SetLogger(quietLogger{}) }

// pingURL reports whether a Redis answers PING at url within a second.
func pingURL(ctx context.Context, url string) error {
	c, err := redisclient.New(redisclient.Config{
		URL: url, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// startRedis returns the Redis for the session: the one at url when it
// answers (mode auto), else a real redis-server on a free port when one is
// installed, else an embedded miniredis. say reports which.
func startRedis(ctx context.Context, mode, url string, say func(string, ...any)) (sessionRedis, error) {
	if mode == modeAuto {
		err := pingURL(ctx, url)
		if err == nil {
			say("using the Redis that answers at %s", redisclient.Redact(url))
			say("%s", promise(ctx, url))
			return sessionRedis{URL: url}, nil
		}
		say("nothing answers at %s (%v): starting a Redis for this session", redisclient.Redact(url), err)
	}
	if mode != modeEmbedded {
		_, err := redisproc.Binary()
		switch {
		case err == nil:
			return startServer(ctx, say)
		case mode == modeServer:
			return sessionRedis{}, err
		}
		say("%v", err)
	}
	return startEmbedded(say)
}

func startServer(ctx context.Context, say func(string, ...any)) (sessionRedis, error) {
	dir, err := os.MkdirTemp("", "ra-devrun-redis-")
	if err != nil {
		return sessionRedis{}, fmt.Errorf("redis data dir: %w", err)
	}
	proc, err := redisproc.Start(ctx, redisproc.Options{Dir: dir, AOF: true, Fsync: redisproc.FsyncAlways})
	if err != nil {
		_ = os.RemoveAll(dir)
		return sessionRedis{}, fmt.Errorf("start redis-server: %w", err)
	}
	say("started redis-server at %s for this session (data in %s, deleted on exit)", proc.URL(), dir)
	say("%s", promise(ctx, proc.URL()))
	return sessionRedis{URL: proc.URL(), Owned: true, stop: func() error {
		return errors.Join(proc.Stop(), os.RemoveAll(dir))
	}}, nil
}

// promise reads what the Redis at url promises for a 201 (CONFIG GET
// appendonly appendfsync) and says it in one line.
func promise(ctx context.Context, url string) string {
	c, err := redisclient.New(redisclient.Config{
		URL: url, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
	})
	if err != nil {
		return "redis durability: unknown (" + err.Error() + ")"
	}
	defer c.Close()
	st, err := store.New(c, "", 1)
	if err != nil {
		return "redis durability: unknown (" + err.Error() + ")"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	d, err := st.Durability(ctx)
	if err != nil {
		return "redis durability: unknown (" + err.Error() + ")"
	}
	return "redis durability: " + string(d) + " (" + durabilityMeaning[d] + ")"
}

// durabilityMeaning is what a 201 survives under each setting.
var durabilityMeaning = map[store.Durability]string{
	store.DurabilityAlways:   "appendfsync always: a 201 survives a crash of Redis or of the host",
	store.DurabilityEverysec: "appendfsync everysec: a crash of Redis or of the host can lose writes answered 201; run it with --appendfsync always",
	store.DurabilityNo:       "appendfsync no: a host crash can lose about 30s of writes answered 201; run it with --appendfsync always",
	store.DurabilityOff:      "appendonly no: a restart loses every write; run it with --appendonly yes --appendfsync always",
	store.DurabilityUnknown:  "CONFIG GET refused: what a 201 survives cannot be checked",
}

// startEmbedded starts miniredis with ClockTTL: without it TTLs only move on
// FastForward, so rate-limit windows would never reset.
func startEmbedded(say func(string, ...any)) (sessionRedis, error) {
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true)
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return sessionRedis{}, fmt.Errorf("start embedded redis: %w", err)
	}
	url := "redis://" + m.Addr()
	say("no redis-server installed: started an embedded in-memory Redis (miniredis) at %s; data is lost on exit", url)
	say("redis durability: %s (in memory only: a 201 survives nothing but the session)", store.DurabilityOff)
	return sessionRedis{URL: url, Owned: true, stop: func() error { m.Close(); return nil }}, nil
}
