package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/redisproc"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
)

func idem(key, body string) store.Idempotency {
	return store.Idempotency{Key: key, Fingerprint: sha256.Sum256([]byte(body)), TTL: time.Hour}
}

// A request with an Idempotency-Key, sent again and again in every way a
// client can: the first append stores, a replay returns the same ids and
// counts and writes nothing, another body under the key is refused, a 429
// is not recorded, another client's key of the same name is its own.
func TestAppendIdempotencyKey(t *testing.T) {
	srv := redistest.Start(t)
	st := serviceStore(t, srv.URL(), false, 1)
	rdb := srv.Client(t)
	ctx := context.Background()
	k := st.Keys()
	limit := store.Limit{Max: 3, Window: time.Minute}
	type state struct{ xlen, quota int64 }
	now := func(client string) state {
		q, _ := rdb.Get(ctx, k.RateLimit(0, client)).Int64()
		return state{rdb.XLen(ctx, k.Stream(0)).Val(), q}
	}

	first, err := st.Append(ctx, "a", limit, metrics(3, "t"), idem("k1", "body"))
	if err != nil || !first.Allowed || len(first.IDs) != 3 || first.Idempotency != store.IdemNone {
		t.Fatalf("first append = %+v, %v", first, err)
	}
	before := now("a")

	tests := []struct {
		name        string
		client      string
		idem        store.Idempotency
		n           int
		wantStatus  store.IdempotencyStatus
		wantAllowed bool
		wantSameIDs bool
		wantWrite   bool
	}{
		{"replay", "a", idem("k1", "body"), 3, store.IdemReplayed, true, true, false},
		{"replay again", "a", idem("k1", "body"), 3, store.IdemReplayed, true, true, false},
		{"another body under the key", "a", idem("k1", "other body"), 3, store.IdemKeyReused, false, false, false},
		{"another client, same key and body", "b", idem("k1", "body"), 3, store.IdemNone, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			was := now(tt.client)
			res, err := st.Append(ctx, tt.client, limit, metrics(tt.n, "t"), tt.idem)
			if err != nil {
				t.Fatal(err)
			}
			if res.Idempotency != tt.wantStatus || res.Allowed != tt.wantAllowed {
				t.Fatalf("result %+v, want status %d allowed %t", res, tt.wantStatus, tt.wantAllowed)
			}
			if same := slices.Equal(res.IDs, first.IDs); same != tt.wantSameIDs {
				t.Errorf("ids %v, first %v: same = %t, want %t", res.IDs, first.IDs, same, tt.wantSameIDs)
			}
			got := now(tt.client)
			if wrote := got != was; wrote != tt.wantWrite {
				t.Errorf("stream/quota %+v -> %+v: wrote = %t, want %t", was, got, wrote, tt.wantWrite)
			}
		})
	}
	if got := now("a"); got.quota != before.quota {
		t.Errorf("client a's quota counter %d after the replays, want %d", got.quota, before.quota)
	}

	t.Run("a 429 is not recorded", func(t *testing.T) {
		for range 2 { // a's third and last request of the window
			if _, err := st.Append(ctx, "a", limit, metrics(1, "t"), store.Idempotency{}); err != nil {
				t.Fatal(err)
			}
		}
		res, err := st.Append(ctx, "a", limit, metrics(1, "t"), idem("k429", "x"))
		if err != nil || res.Allowed {
			t.Fatalf("over quota: %+v, %v", res, err)
		}
		if n := rdb.Exists(ctx, k.Idempotency(0, "a", "k429")).Val(); n != 0 {
			t.Fatal("a 429 left a record: the client's retry after the window would be refused")
		}
		rdb.Del(ctx, k.RateLimit(0, "a")) // the window ends
		res, err = st.Append(ctx, "a", limit, metrics(1, "t"), idem("k429", "x"))
		if err != nil || !res.Allowed || res.Idempotency != store.IdemNone || len(res.IDs) != 1 {
			t.Fatalf("retry after the window: %+v, %v", res, err)
		}
	})
}

// Two requests with one key in one script call (the coalescer batches
// concurrent retries): the second sees the first's record, so the metrics
// are stored once and both get the same ids.
func TestAppendManySameKeyStoresOnce(t *testing.T) {
	srv := redistest.Start(t)
	st := serviceStore(t, srv.URL(), false, 1)
	rdb := srv.Client(t)
	ctx := context.Background()
	limit := store.Limit{Max: 100, Window: time.Minute}
	calls := []*store.AppendCall{
		st.NewAppendCall("a", limit, metrics(2, "t"), idem("k", "b")),
		st.NewAppendCall("a", limit, metrics(2, "t"), idem("k", "b")),
		st.NewAppendCall("a", limit, metrics(2, "t"), idem("k", "other")),
	}
	st.AppendMany(ctx, calls)
	for i, c := range calls {
		if c.Err != nil {
			t.Fatalf("call %d: %v", i, c.Err)
		}
	}
	if got := calls[1].Result; got.Idempotency != store.IdemReplayed || !slices.Equal(got.IDs, calls[0].Result.IDs) {
		t.Errorf("second call %+v, want a replay of %v", got, calls[0].Result.IDs)
	}
	if got := calls[2].Result; got.Idempotency != store.IdemKeyReused || got.Allowed {
		t.Errorf("third call (other body) %+v, want key reused", got)
	}
	if n := rdb.XLen(ctx, st.Keys().Stream(0)).Val(); n != 2 {
		t.Errorf("stream has %d entries, want 2", n)
	}
	if q, _ := rdb.Get(ctx, st.Keys().RateLimit(0, "a")).Int64(); q != 1 {
		t.Errorf("quota counter %d, want 1", q)
	}
}

// The record lives IDEMPOTENCY_TTL: after it the key is new again.
func TestIdempotencyRecordExpires(t *testing.T) {
	srv := redistest.Start(t)
	st := serviceStore(t, srv.URL(), false, 1)
	rdb := srv.Client(t)
	ctx := context.Background()
	id := idem("k", "b")
	id.TTL = 200 * time.Millisecond
	first, err := st.Append(ctx, "a", store.Limit{}, metrics(1, "t"), id)
	if err != nil {
		t.Fatal(err)
	}
	rec := st.Keys().Idempotency(0, "a", "k")
	if ttl := rdb.PTTL(ctx, rec).Val(); ttl <= 0 || ttl > id.TTL {
		t.Fatalf("record PTTL %s, want (0, %s]", ttl, id.TTL)
	}
	for deadline := time.Now().Add(10 * time.Second); rdb.Exists(ctx, rec).Val() == 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("record still there 10s after its 200ms TTL")
		}
	}
	again, err := st.Append(ctx, "a", store.Limit{}, metrics(1, "t"), id)
	if err != nil || again.Idempotency != store.IdemNone || slices.Equal(again.IDs, first.IDs) {
		t.Fatalf("after expiry: %+v, %v; want a new append", again, err)
	}
}

// What a record costs in Redis memory (docs/operations.md quotes these):
// its ids are packed, so a batch of 1000 costs little more than one metric.
func TestIdempotencyRecordMemory(t *testing.T) {
	srv := redistest.Start(t)
	srv.RequireReal(t)
	st := serviceStore(t, srv.URL(), false, 1)
	rdb := srv.Client(t)
	ctx := context.Background()
	for _, n := range []int{1, 1000} {
		if _, err := st.Append(ctx, "key:ingest-1", store.Limit{}, metrics(n, "t"), idem("k", string(rune(n)))); err != nil {
			t.Fatal(err)
		}
		rec := st.Keys().Idempotency(0, "key:ingest-1", "k")
		bytes, err := rdb.MemoryUsage(ctx, rec).Result()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("record of a request of %d metrics: MEMORY USAGE %d bytes (value %d bytes)", n, bytes, len(rdb.Get(ctx, rec).Val()))
		if bytes > 512 {
			t.Errorf("a record of %d metrics takes %d bytes: the ids are not packed", n, bytes)
		}
		res, err := st.Append(ctx, "key:ingest-1", store.Limit{}, metrics(n, "t"), idem("k", string(rune(n))))
		if err != nil || res.Idempotency != store.IdemReplayed || len(res.IDs) != n {
			t.Fatalf("replay of %d: %v ids, %+v", n, len(res.IDs), err)
		}
		rdb.Del(ctx, rec)
	}
}

// The two 503s come from what go-redis reports: a Redis that is down
// cannot have run the write (ErrUnavailable); one that took the command and
// stopped answering may have (ErrOutcomeUnknown), and it runs it once it
// wakes: only a retry with the same key is then safe, and it stores
// nothing more.
func TestAppendFailureIsUnavailableOrUnknown(t *testing.T) {
	t.Run("stopped and killed: unavailable", func(t *testing.T) {
		srv := redistest.StartWith(t, redistest.Options{AOF: true})
		srv.RequireReal(t)
		st := serviceStore(t, srv.URL(), false, 1)
		ctx := context.Background()
		if _, err := st.Append(ctx, "c", store.Limit{}, metrics(1, "a"), idem("k0", "x")); err != nil {
			t.Fatal(err) // a pooled connection exists when Redis goes away
		}
		for _, down := range []func(testing.TB){srv.Stop, srv.Kill} {
			down(t)
			_, err := st.Append(ctx, "c", store.Limit{}, metrics(1, "a"), idem("k1", "x"))
			if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrOutcomeUnknown) {
				t.Fatalf("err = %v, want ErrUnavailable only", err)
			}
			srv.Restart(t)
		}
	})
	t.Run("paused past the read timeout: unknown, and a retry stores once", func(t *testing.T) {
		srv := redistest.StartWith(t, redistest.Options{AOF: true, Fsync: redisproc.FsyncAlways})
		srv.RequireReal(t)
		st := serviceStore(t, srv.URL(), false, 1)
		rdb := srv.Client(t)
		ctx := context.Background()
		limit := store.Limit{Max: 10, Window: time.Minute}
		if _, err := st.Append(ctx, "c", limit, metrics(1, "a"), store.Idempotency{}); err != nil {
			t.Fatal(err)
		}
		srv.Pause(t)
		_, err := st.Append(ctx, "c", limit, metrics(3, "a"), idem("lost", "x"))
		if !errors.Is(err, store.ErrOutcomeUnknown) || errors.Is(err, store.ErrUnavailable) {
			srv.Resume(t)
			t.Fatalf("err = %v, want ErrOutcomeUnknown only", err)
		}
		srv.Resume(t)
		res, err := st.Append(ctx, "c", limit, metrics(3, "a"), idem("lost", "x"))
		if err != nil || res.Idempotency != store.IdemReplayed || len(res.IDs) != 3 {
			t.Fatalf("retry after the stall: %+v, %v; want a replay (Redis ran the lost call)", res, err)
		}
		if n := rdb.XLen(ctx, st.Keys().Stream(0)).Val(); n != 4 {
			t.Errorf("stream has %d entries, want 4: the lost call once, the retry not at all", n)
		}
		if q, _ := rdb.Get(ctx, st.Keys().RateLimit(0, "c")).Int64(); q != 2 {
			t.Errorf("quota counter %d, want 2", q)
		}
	})
}
