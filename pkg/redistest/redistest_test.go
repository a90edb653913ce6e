package redistest_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redistest"
)

func TestKillAndRestartKeepsAOFData(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{AOF: true})
	srv.RequireReal(t)
	ctx := context.Background()
	c := srv.Client(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// A graceful stop flushes the AOF; with appendfsync always a kill loses nothing either.
	srv.Stop(t)
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded with Redis stopped")
	}
	srv.Restart(t)
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("after restart GET k = %q, %v; want v", got, err)
	}
	srv.Kill(t)
	srv.Restart(t)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after kill+restart: %v", err)
	}
}

func TestEachTestGetsItsOwnServer(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share %s", a.Addr())
	}
	ctx := context.Background()
	if err := a.Client(t).Set(ctx, "only-in-a", 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.Client(t).Exists(ctx, "only-in-a").Result(); n != 0 {
		t.Fatal("servers are not isolated")
	}
}

// A paused Redis takes the command and answers nothing until Resume: the
// client's read times out, and the command still runs once Redis wakes.
func TestPauseHoldsRepliesUntilResume(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{AOF: true})
	srv.RequireReal(t)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Pause(t)
	err := c.Incr(ctx, "n").Err()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		srv.Resume(t)
		t.Fatalf("INCR on a paused Redis: %v, want a read timeout", err)
	}
	srv.Resume(t)
	check := srv.Client(t)
	if n, err := check.Get(ctx, "n").Int(); err != nil || n != 1 {
		t.Fatalf("after Resume n = %d, %v; want 1: the timed-out INCR ran once Redis woke", n, err)
	}
	if d, err := check.ConfigGet(ctx, "appendfsync").Result(); err != nil || d["appendfsync"] != "always" {
		t.Errorf("appendfsync = %v, %v; want always by default", d, err)
	}
}
