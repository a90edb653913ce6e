package system_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/internal/system"
)

type fakeGroups struct {
	groups []system.Group
	err    error
}

func (f fakeGroups) Groups(context.Context) ([]system.Group, error) { return f.groups, f.err }

type pingFunc func(context.Context) error

func (f pingFunc) Ping(ctx context.Context) error { return f(ctx) }

func lag(n int64) *int64 { return &n }

func TestHandler(t *testing.T) {
	ok := pingFunc(func(context.Context) error { return nil })
	down := pingFunc(func(context.Context) error { return errors.New("dial tcp: connection refused") })
	consumer := []system.Consumer{{Name: "agg-1", Pending: 2, IdleMs: 150}}
	for _, tc := range []struct {
		name       string
		groups     fakeGroups
		ping       system.Pinger
		durability func() string
		want       string
	}{
		{
			name:   "one partition",
			groups: fakeGroups{groups: []system.Group{{Partition: 0, Stream: "{metrics:0}:stream", Exists: true, Lag: lag(3), Pending: 2, Consumers: consumer}}},
			ping:   ok,
			want: `{"redis":"ok","durability":"unknown","circuit_state":"CLOSED","group":"aggregators","lag":3,"pending":2,` +
				`"groups":[{"partition":0,"stream":"{metrics:0}:stream","exists":true,"lag":3,"pending":2,"consumers":[{"name":"agg-1","pending":2,"idle_ms":150}]}]}`,
		},
		{
			name: "partitions sum, one lag unknown makes the total unknown",
			groups: fakeGroups{groups: []system.Group{
				{Partition: 0, Stream: "a", Exists: true, Lag: lag(3), Pending: 1, Consumers: []system.Consumer{}},
				{Partition: 1, Stream: "b", Exists: true, Lag: nil, Pending: 4, Consumers: []system.Consumer{}},
			}},
			ping: ok,
			want: `{"redis":"ok","durability":"unknown","circuit_state":"CLOSED","group":"aggregators","lag":null,"pending":5,` +
				`"groups":[{"partition":0,"stream":"a","exists":true,"lag":3,"pending":1,"consumers":[]},{"partition":1,"stream":"b","exists":true,"lag":null,"pending":4,"consumers":[]}]}`,
		},
		{
			name:       "redis down: still 200, with the breaker",
			groups:     fakeGroups{err: errors.New("xinfo groups: connection refused")},
			ping:       down,
			durability: func() string { return "everysec" },
			want: `{"redis":"failing: unreachable","durability":"everysec","circuit_state":"CLOSED","group":"aggregators",` +
				`"lag":null,"pending":0,"groups":null,"groups_error":"consumer groups unreadable: unreachable"}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := system.New(tc.groups, tc.ping, func() string { return "CLOSED" }, system.Options{Durability: tc.durability})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/system", nil))
			if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("%d %v", rec.Code, rec.Header())
			}
			var got, want any
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			_ = json.Unmarshal([]byte(tc.want), &want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("body\n got %s\nwant %s", rec.Body.Bytes(), tc.want)
			}
		})
	}
}

func TestRedisGroups(t *testing.T) {
	srv := redistest.Start(t)
	srv.RequireReal(t) // XINFO's lag field needs a real redis-server
	rdb := srv.Client(t)
	ctx := context.Background()
	st, err := store.New(rdb, "metrics", 2)
	if err != nil {
		t.Fatal(err)
	}
	k := st.Keys()
	g := system.NewStoreGroups(st, "aggregators")

	got, err := g.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for p, gr := range got {
		if gr.Exists || gr.Lag != nil || gr.Partition != p || gr.Stream != k.Stream(p) || gr.Consumers == nil {
			t.Errorf("no streams yet: partition %d = %+v, want a missing group", p, gr)
		}
	}

	// Partition 0: 5 entries, consumer c1 reads 2 and acks 1. Partition 1:
	// a stream with another group only.
	for i := range 5 {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: k.Stream(0), Values: []any{"n", i}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.XGroupCreate(ctx, k.Stream(0), "aggregators", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XGroupCreateMkStream(ctx, k.Stream(1), "others", "0").Err(); err != nil {
		t.Fatal(err)
	}
	res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "aggregators", Consumer: "c1", Streams: []string{k.Stream(0), ">"}, Count: 2}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.XAck(ctx, k.Stream(0), "aggregators", res[0].Messages[0].ID).Err(); err != nil {
		t.Fatal(err)
	}

	got, err = g.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p0 := got[0]
	if !p0.Exists || p0.Lag == nil || *p0.Lag != 3 || p0.Pending != 1 || len(p0.Consumers) != 1 ||
		p0.Consumers[0].Name != "c1" || p0.Consumers[0].Pending != 1 || p0.Consumers[0].IdleMs < 0 || p0.Consumers[0].IdleMs > int64(time.Minute/time.Millisecond) {
		t.Errorf("partition 0 = %+v (consumers %+v), want lag 3, pending 1, consumer c1 with 1 pending", p0, p0.Consumers)
	}
	if got[1].Exists {
		t.Errorf("partition 1 = %+v: only another group exists there", got[1])
	}

	// A deleted entry makes XINFO report the lag as null; the store counts
	// the entries after the last-delivered id instead, so it stays exact.
	if err := rdb.XDel(ctx, k.Stream(0), res[0].Messages[1].ID).Err(); err != nil {
		t.Fatal(err)
	}
	rest, _ := rdb.XRange(ctx, k.Stream(0), "-", "+").Result()
	if err := rdb.XDel(ctx, k.Stream(0), rest[len(rest)-1].ID).Err(); err != nil {
		t.Fatal(err)
	}
	got, err = g.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Lag == nil || *got[0].Lag != 2 {
		t.Errorf("after XDEL in the unread range: lag %v, want 2 (counted)", got[0].Lag)
	}

	srv.Stop(t)
	if _, err := g.Groups(ctx); err == nil {
		t.Error("Redis stopped: want an error")
	}
}
