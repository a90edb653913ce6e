package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redisproc"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
)

func TestDurabilityReadsTheAOFPolicy(t *testing.T) {
	tests := []struct {
		name string
		opts redistest.Options
		want store.Durability
	}{
		{"appendonly no", redistest.Options{}, store.DurabilityOff},
		{"always (the default with AOF)", redistest.Options{AOF: true}, store.DurabilityAlways},
		{"everysec", redistest.Options{AOF: true, Fsync: redisproc.FsyncEverysec}, store.DurabilityEverysec},
		{"no", redistest.Options{AOF: true, Fsync: redisproc.FsyncNo}, store.DurabilityNo},
		{"CONFIG renamed away", redistest.Options{Args: []string{"--rename-command", "CONFIG", ""}}, store.DurabilityUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.StartWith(t, tt.opts)
			srv.RequireReal(t)
			st := serviceStore(t, srv.URL(), false, 1)
			got, err := st.Durability(context.Background())
			if err != nil || got != tt.want {
				t.Fatalf("Durability = %q, %v; want %q", got, err, tt.want)
			}
			if got.Weaker() != (tt.want != store.DurabilityAlways) {
				t.Errorf("%q.Weaker() = %t", got, got.Weaker())
			}
		})
	}
	t.Run("Redis down is an error", func(t *testing.T) {
		srv := redistest.Start(t)
		srv.RequireReal(t)
		st := serviceStore(t, srv.URL(), false, 1)
		srv.Kill(t)
		if d, err := st.Durability(context.Background()); !errors.Is(err, store.ErrUnavailable) || d != store.DurabilityUnknown {
			t.Fatalf("Durability = %q, %v; want unknown and ErrUnavailable", d, err)
		}
	})
}

// On a cluster every master holds partitions: the weakest one is what a
// 201 can promise.
func TestDurabilityOfAClusterIsItsWeakestMaster(t *testing.T) {
	c := redistest.StartCluster(t, 3, redistest.ClusterOptions{})
	st := serviceStore(t, c.URL(), true, 3)
	ctx := context.Background()
	if d, err := st.Durability(ctx); err != nil || d != store.DurabilityAlways {
		t.Fatalf("Durability = %q, %v; want always", d, err)
	}
	node := c.Client(t)
	if err := node.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		if m.Options().Addr == c.Addrs()[1] {
			return m.ConfigSet(ctx, "appendfsync", "everysec").Err()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if d, err := st.Durability(ctx); err != nil || d != store.DurabilityEverysec {
		t.Fatalf("Durability with one master on everysec = %q, %v; want everysec", d, err)
	}
}
