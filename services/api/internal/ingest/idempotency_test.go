package ingest_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/internal/ingest"
	"github.com/resilientanalytics/ra/services/api/internal/ratelimit"
)

// idemRig is the ingest handler over a real Redis, coalesced as the api
// runs it, with what a test needs to look inside.
type idemRig struct {
	srv *redistest.Server
	st  *store.Store
	rdb *redis.Client
	h   *ingest.Handler
}

func newIdemRig(t *testing.T, opts redistest.Options, policy ratelimit.Policy, ttl time.Duration) *idemRig {
	t.Helper()
	srv := redistest.StartWith(t, opts)
	st := serviceStore(t, srv.URL())
	c := ingest.NewCoalescer(st, ingest.CoalescerOptions{})
	t.Cleanup(c.Close)
	h := mustHandler(t, c, policy, ingest.Limits{MaxBodyBytes: 1 << 20, MaxBatch: 1000, IdempotencyTTL: ttl}, &counter{}, slog.New(slog.DiscardHandler))
	return &idemRig{srv: srv, st: st, rdb: srv.Client(t), h: h}
}

type idemAnswer struct {
	status   int
	replayed string
	problem  string
	ids      []string
	header   http.Header
	body     string
}

// post sends body from client (its address) with key ("" = no header;
// the value is sent as is), gzipped when zipped.
func (g *idemRig) post(t *testing.T, client, key, body string, zipped bool) idemAnswer {
	t.Helper()
	b := []byte(body)
	if zipped {
		b = gz(t, b)
	}
	req := httptest.NewRequest("POST", "/api/metrics", strings.NewReader(string(b)))
	req.RemoteAddr = client + ":40000"
	req.Header.Set("Content-Type", "application/json")
	if zipped {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	w := httptest.NewRecorder()
	g.h.ServeHTTP(w, req)
	a := idemAnswer{status: w.Code, replayed: w.Header().Get(ingest.ReplayedHeader), header: w.Header(), body: w.Body.String()}
	var out struct {
		ID   string
		IDs  []string
		Type string
	}
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	a.ids = out.IDs
	if out.ID != "" {
		a.ids = []string{out.ID}
	}
	a.problem = out.Type
	return a
}

func (g *idemRig) xlen(t *testing.T) int64 {
	t.Helper()
	return g.rdb.XLen(context.Background(), g.st.Keys().Stream(0)).Val()
}

func (g *idemRig) quota(t *testing.T, client string) int64 {
	t.Helper()
	n, _ := g.rdb.Get(context.Background(), g.st.Keys().RateLimit(0, client)).Int64()
	return n
}

const (
	batchA = `[{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"idem"},{"timestamp":"2026-02-15T10:00:00Z","value":2,"type":"idem"}]`
	batchB = `[{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"idem"},{"timestamp":"2026-02-15T10:00:00Z","value":3,"type":"idem"}]`
)

// Each way a client can send a request again, through the handler and a
// real Redis: what it answers, and what it stores and counts.
func TestIdempotencyKeyThroughTheHandler(t *testing.T) {
	g := newIdemRig(t, redistest.Options{}, ratelimit.Policy{Max: 100, Window: time.Minute}, 0)
	first := g.post(t, "192.0.2.1", `"order-1"`, batchA, false)
	if first.status != 201 || len(first.ids) != 2 || first.replayed != "" {
		t.Fatalf("first: %+v", first)
	}
	tests := []struct {
		name, client, key, body string
		zipped                  bool
		status                  int
		replayed                bool
		problem                 string
		sameIDs, writes         bool
	}{
		{"replay", "192.0.2.1", `"order-1"`, batchA, false, 201, true, "", true, false},
		{"the bare token is the same key", "192.0.2.1", `order-1`, batchA, false, 201, true, "", true, false},
		{"the same JSON gzipped is a replay", "192.0.2.1", `"order-1"`, batchA, true, 201, true, "", true, false},
		{"another body under the key", "192.0.2.1", `"order-1"`, batchB, false, 422, false, "/idempotency-key-reused", false, false},
		{"another client's key of the same name", "192.0.2.2", `"order-1"`, batchA, false, 201, false, "", false, true},
		{"a malformed key", "192.0.2.1", `"order-1`, batchA, false, 400, false, "/invalid-idempotency-key", false, false},
		{"an empty key", "192.0.2.1", `""`, batchA, false, 400, false, "/invalid-idempotency-key", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			xlen, quota := g.xlen(t), g.quota(t, tt.client)
			a := g.post(t, tt.client, tt.key, tt.body, tt.zipped)
			if a.status != tt.status || (a.replayed == "true") != tt.replayed || !strings.HasSuffix(a.problem, tt.problem) {
				t.Fatalf("answer %+v, want %d replayed=%t problem %q", a, tt.status, tt.replayed, tt.problem)
			}
			if tt.status == 400 && !strings.Contains(a.body, "Idempotency-Key") {
				t.Errorf("400 body %s does not name the header", a.body)
			}
			if same := slices.Equal(a.ids, first.ids); same != tt.sameIDs {
				t.Errorf("ids %v vs first %v: same = %t, want %t", a.ids, first.ids, same, tt.sameIDs)
			}
			if tt.replayed && a.header.Get("RateLimit") != "" {
				t.Errorf("a replay reports RateLimit %q, but used no quota", a.header.Get("RateLimit"))
			}
			wrote := g.xlen(t) != xlen || g.quota(t, tt.client) != quota
			if wrote != tt.writes {
				t.Errorf("stream %d->%d, quota %d->%d: wrote = %t, want %t", xlen, g.xlen(t), quota, g.quota(t, tt.client), wrote, tt.writes)
			}
		})
	}
}

// A 429 is not recorded: once the window ends, the same key goes through.
func TestIdempotencyKeyNotRecordedOn429(t *testing.T) {
	g := newIdemRig(t, redistest.Options{}, ratelimit.Policy{Max: 1, Window: time.Minute}, 0)
	if a := g.post(t, "192.0.2.1", "", batchA, false); a.status != 201 {
		t.Fatalf("first: %+v", a)
	}
	if a := g.post(t, "192.0.2.1", `"k"`, batchA, false); a.status != 429 {
		t.Fatalf("second: %+v, want 429", a)
	}
	g.rdb.Del(context.Background(), g.st.Keys().RateLimit(0, "192.0.2.1")) // the window ends
	a := g.post(t, "192.0.2.1", `"k"`, batchA, false)
	if a.status != 201 || a.replayed != "" || len(a.ids) != 2 {
		t.Fatalf("after the window: %+v, want a fresh 201", a)
	}
	if n := g.xlen(t); n != 4 {
		t.Errorf("stream has %d entries, want 4", n)
	}
}

// Concurrent requests with one key (a client that retries before its
// first try answered) are stored once, whether the coalescer puts them in
// one script call or several: every one of them gets the same ids.
func TestIdempotencyKeyConcurrentRequestsStoreOnce(t *testing.T) {
	g := newIdemRig(t, redistest.Options{}, ratelimit.Policy{Max: 1000, Window: time.Minute}, 0)
	const n = 32
	answers := make([]idemAnswer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { answers[i] = g.post(t, "192.0.2.1", `"same"`, batchA, false) })
	}
	wg.Wait()
	replays := 0
	for i, a := range answers {
		if a.status != 201 || !slices.Equal(a.ids, answers[0].ids) {
			t.Fatalf("answer %d: %+v; want 201 with ids %v", i, a, answers[0].ids)
		}
		if a.replayed == "true" {
			replays++
		}
	}
	if replays != n-1 {
		t.Errorf("%d replays of %d, want %d", replays, n, n-1)
	}
	if x, q := g.xlen(t), g.quota(t, "192.0.2.1"); x != 2 || q != 1 {
		t.Errorf("stream %d entries, quota %d: want 2 and 1 (stored and counted once)", x, q)
	}
}

// The record expires after IDEMPOTENCY_TTL: the key is then a new request.
func TestIdempotencyKeyExpires(t *testing.T) {
	g := newIdemRig(t, redistest.Options{}, ratelimit.Policy{}, 300*time.Millisecond)
	first := g.post(t, "192.0.2.1", `"k"`, batchA, false)
	if first.status != 201 {
		t.Fatalf("first: %+v", first)
	}
	rec := g.st.Keys().Idempotency(0, "192.0.2.1", "k")
	for deadline := time.Now().Add(10 * time.Second); g.rdb.Exists(context.Background(), rec).Val() == 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("record still there 10s after its TTL")
		}
	}
	a := g.post(t, "192.0.2.1", `"k"`, batchA, false)
	if a.status != 201 || a.replayed != "" || slices.Equal(a.ids, first.ids) {
		t.Fatalf("after expiry: %+v, want a new append", a)
	}
}

// The two 503s, from a real redis-server: down is store-unavailable
// (nothing was stored); frozen past the read timeout is
// write-outcome-unknown, Redis runs the call when it wakes, and the
// client's retry with its key returns those ids and stores nothing more.
func TestIdempotencyKeyMakesTheUnknownOutcomeSafe(t *testing.T) {
	t.Run("stopped: store-unavailable", func(t *testing.T) {
		g := newIdemRig(t, redistest.Options{AOF: true}, ratelimit.Policy{Max: 100, Window: time.Minute}, 0)
		g.srv.RequireReal(t)
		if a := g.post(t, "192.0.2.1", `"warm"`, batchA, false); a.status != 201 {
			t.Fatalf("warm-up: %+v", a)
		}
		g.srv.Stop(t)
		a := g.post(t, "192.0.2.1", `"k"`, batchA, false)
		if a.status != 503 || !strings.HasSuffix(a.problem, "/store-unavailable") || a.header.Get("Retry-After") == "" {
			t.Fatalf("answer %+v, want 503 store-unavailable with Retry-After", a)
		}
	})
	t.Run("paused: write-outcome-unknown, then exactly once", func(t *testing.T) {
		g := newIdemRig(t, redistest.Options{AOF: true}, ratelimit.Policy{Max: 100, Window: time.Minute}, 0)
		g.srv.RequireReal(t)
		if a := g.post(t, "192.0.2.1", "", batchA, false); a.status != 201 {
			t.Fatalf("warm-up: %+v", a)
		}
		g.srv.Pause(t)
		a := g.post(t, "192.0.2.1", `"lost"`, batchB, false)
		g.srv.Resume(t)
		if a.status != 503 || !strings.HasSuffix(a.problem, "/write-outcome-unknown") || a.header.Get("Retry-After") == "" ||
			!strings.Contains(a.body, "Idempotency-Key") {
			t.Fatalf("answer %+v, want 503 write-outcome-unknown with Retry-After, telling to retry with the key", a)
		}
		var retry idemAnswer
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if retry = g.post(t, "192.0.2.1", `"lost"`, batchB, false); retry.status != 503 || time.Now().After(deadline) {
				break
			}
		}
		if retry.status != 201 || retry.replayed != "true" || len(retry.ids) != 2 {
			t.Fatalf("retry: %+v, want the replay of what Redis ran after waking", retry)
		}
		if x, q := g.xlen(t), g.quota(t, "192.0.2.1"); x != 4 || q != 2 {
			t.Errorf("stream %d entries, quota %d; want 4 and 2: the lost request exactly once", x, q)
		}
	})
}
