package store_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
)

// limitedStore is the store of family on the services' client with
// MAX_TYPES max.
func limitedStore(tb testing.TB, url, family string, partitions, max int) *store.Store {
	tb.Helper()
	rdb, err := redisclient.New(redisclient.Config{URL: url, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = rdb.Close() })
	st, err := store.New(rdb, family, partitions, store.WithMaxTypes(max))
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func typed(types ...string) []metric.Metric {
	out := make([]metric.Metric, len(types))
	for i, t := range types {
		out[i] = metric.Metric{Timestamp: time.Unix(1771149600, 0).UTC(), Value: 1, Type: t}
	}
	return out
}

func members(tb testing.TB, rdb *redis.Client, key string) []string {
	tb.Helper()
	m, err := rdb.SMembers(context.Background(), key).Result()
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(m)
	return m
}

// Each case: a partition at or near its cap of 3 types, one request. A
// refused request names the first type past the cap and leaves no trace:
// no entry, no quota used, no admitted type.
func TestMaxTypesAtTheEdge(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	tests := []struct {
		name         string
		aggregated   []string // in the types set (folded by the aggregator)
		admitted     []string // in the admitted set
		request      []string
		refused      string // "" = accepted
		wantAdmitted []string
	}{
		{"last free type", nil, []string{"a", "b"}, []string{"c"}, "", []string{"a", "b", "c"}},
		{"one past the cap", nil, []string{"a", "b", "c"}, []string{"d"}, "d", []string{"a", "b", "c"}},
		{"known types at the cap", nil, []string{"a", "b", "c"}, []string{"a", "c", "a"}, "", []string{"a", "b", "c"}},
		{"batch of two new, one free: the whole batch is refused", nil, []string{"a", "b"}, []string{"a", "x", "y"}, "y", []string{"a", "b"}},
		{"a new type repeated counts once", nil, []string{"a", "b"}, []string{"x", "x", "x"}, "", []string{"a", "b", "x"}},
		{"aggregated types count without an admitted set", []string{"a", "b", "c"}, nil, []string{"d"}, "d", []string{"a", "b", "c"}},
		{"an aggregated type is known without an admitted set", []string{"a", "b", "c"}, nil, []string{"b"}, "", []string{"a", "b", "c"}},
		{"upgrade below the cap", []string{"a", "b"}, nil, []string{"c"}, "", []string{"a", "b", "c"}},
		{"types in flight count before the aggregator saw them", []string{"a"}, []string{"a", "b", "c"}, []string{"d"}, "d", []string{"a", "b", "c"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			family := fmt.Sprintf("edge%d", i)
			st := limitedStore(t, srv.URL(), family, 1, 3)
			k := st.Keys()
			for _, typ := range tt.aggregated {
				rdb.ZAdd(ctx, k.Types(0), redis.Z{Score: 1, Member: typ})
			}
			for _, typ := range tt.admitted {
				rdb.SAdd(ctx, k.AdmittedTypes(0), typ)
			}
			res, err := st.Append(ctx, "client", store.Limit{Max: 5, Window: time.Minute}, typed(tt.request...), store.Idempotency{})
			if err != nil {
				t.Fatal(err)
			}
			streamLen := rdb.XLen(ctx, k.Stream(0)).Val()
			if tt.refused == "" {
				if !res.Allowed || res.TypeLimit != nil || len(res.IDs) != len(tt.request) || streamLen != int64(len(tt.request)) {
					t.Fatalf("refused or not stored: %+v, stream %d", res, streamLen)
				}
			} else {
				if res.Allowed || res.TypeLimit == nil || res.TypeLimit.Type != tt.refused || res.TypeLimit.Max != 3 || len(res.IDs) != 0 {
					t.Fatalf("got %+v (limit %+v), want type %q refused at 3", res, res.TypeLimit, tt.refused)
				}
				if streamLen != 0 || rdb.Exists(ctx, k.RateLimit(0, "client")).Val() != 0 {
					t.Fatalf("a refused request left %d entries or used quota", streamLen)
				}
			}
			if got := members(t, rdb, k.AdmittedTypes(0)); fmt.Sprint(got) != fmt.Sprint(tt.wantAdmitted) {
				t.Errorf("admitted %v, want %v", got, tt.wantAdmitted)
			}
		})
	}
}

// Requests race for the last free types, each in its own script call and
// all in one call (as the coalescer sends them): the partition never ends
// above the cap, and exactly the accepted requests' types are admitted and
// stored.
func TestMaxTypesRaceNeverOvershoots(t *testing.T) {
	srv := redistest.Start(t)
	srv.RequireReal(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	const max = 50
	tests := []struct {
		name    string
		perReq  int // new types per request
		wantAcc int // requests that must be accepted
		oneCall bool
	}{
		{"one new type per request, concurrent calls", 1, max, false},
		{"three new types per request, concurrent calls", 3, max / 3, false},
		{"one new type per request, one call", 1, max, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			family := fmt.Sprintf("race%d", i)
			st := limitedStore(t, srv.URL(), family, 1, max)
			const requests = 120
			reqs := make([][]metric.Metric, requests)
			for r := range reqs {
				var types []string
				for j := range tt.perReq {
					types = append(types, fmt.Sprintf("t%03d_%d", r, j))
				}
				reqs[r] = typed(types...)
			}
			results := make([]store.AppendResult, requests)
			errs := make([]error, requests)
			if tt.oneCall {
				calls := make([]*store.AppendCall, requests)
				for r := range reqs {
					calls[r] = st.NewAppendCall(fmt.Sprint("c", r), store.Limit{}, reqs[r], store.Idempotency{})
				}
				st.AppendMany(ctx, calls)
				for r, c := range calls {
					results[r], errs[r] = c.Result, c.Err
				}
			} else {
				var wg sync.WaitGroup
				for r := range reqs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						results[r], errs[r] = st.Append(ctx, fmt.Sprint("c", r), store.Limit{}, reqs[r], store.Idempotency{})
					}()
				}
				wg.Wait()
			}
			var accepted, refused int
			want := map[string]bool{}
			for r := range reqs {
				if errs[r] != nil {
					t.Fatal(errs[r])
				}
				switch {
				case results[r].Allowed:
					accepted++
					for _, m := range reqs[r] {
						want[m.Type] = true
					}
				case results[r].TypeLimit != nil:
					refused++
				default:
					t.Fatalf("request %d neither accepted nor refused for types: %+v", r, results[r])
				}
			}
			admitted := members(t, rdb, st.Keys().AdmittedTypes(0))
			if len(admitted) > max || accepted != tt.wantAcc || accepted+refused != requests || len(admitted) != len(want) {
				t.Fatalf("%d accepted, %d refused, %d admitted (cap %d); want %d accepted", accepted, refused, len(admitted), max, tt.wantAcc)
			}
			for _, typ := range admitted {
				if !want[typ] {
					t.Fatalf("type %s admitted but its request was refused", typ)
				}
			}
			stored := map[string]bool{}
			for _, e := range rdb.XRange(ctx, st.Keys().Stream(0), "-", "+").Val() {
				stored[e.Values["type"].(string)] = true
			}
			if len(stored) != len(want) {
				t.Fatalf("stream holds %d types, want the %d admitted", len(stored), len(want))
			}
		})
	}
}
