package redistest_test

import (
	"context"
	"testing"

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
