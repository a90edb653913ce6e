package system

import (
	"context"

	"github.com/resilientanalytics/ra/pkg/store"
)

// StatsReader reads a consumer group on every partition; *store.Store
// implements it.
type StatsReader interface {
	GroupStats(ctx context.Context, group string) ([]store.GroupStats, error)
}

var _ StatsReader = (*store.Store)(nil)

// StoreGroups is Groups over the store.
type StoreGroups struct {
	st    StatsReader
	group string
}

var _ Groups = (*StoreGroups)(nil)

// NewStoreGroups reads group through st.
func NewStoreGroups(st StatsReader, group string) *StoreGroups {
	return &StoreGroups{st: st, group: group}
}

// Groups reads every partition's group.
func (g *StoreGroups) Groups(ctx context.Context) ([]Group, error) {
	stats, err := g.st.GroupStats(ctx, g.group)
	if err != nil {
		return nil, err
	}
	out := make([]Group, len(stats))
	for i, s := range stats {
		out[i] = Group{Partition: s.Partition, Stream: s.Stream, Exists: s.Exists, Lag: s.Lag, Pending: s.Pending,
			Consumers: make([]Consumer, len(s.Consumers))}
		for j, c := range s.Consumers {
			out[i].Consumers[j] = Consumer{Name: c.Name, Pending: c.Pending, IdleMs: c.Idle.Milliseconds()}
		}
	}
	return out, nil
}
