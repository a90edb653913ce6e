package store

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redistest"
)

// One script call carries requests with different policies (what the
// coalescer sends when API keys have their own quotas): each request is
// counted under its own max and window, an uncounted one touches no
// counter, and a bad policy anywhere in the call fails it before the first
// write.
func TestAppendScriptTakesThePolicyPerRequest(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	script := redis.NewScript(appendSrc)
	head := []any{2, "f", "g"}
	req := func(max int, windowMs int64) []any { return []any{1, max, windowMs, "x", "y"} }
	call := func(reqs ...[]any) ([]any, error) {
		keys := []string{"s"}
		args := append([]any(nil), head...)
		for i, r := range reqs {
			keys = append(keys, "rl:"+string(rune('a'+i)))
			args = append(args, r...)
		}
		for range reqs { // no Idempotency-Key: the stream stands in for the record
			keys = append(keys, "s")
			args = append(args, "", 0)
		}
		// The MAX_TYPES block: every request brings the one type "x".
		keys = append(keys, "types", "admitted")
		args = append(args, 10)
		for range reqs {
			args = append(args, 1, "x")
		}
		return script.Run(ctx, rdb, keys, args...).Slice()
	}

	// a: 1 per 60s, b: 3 per 5s, c: not counted.
	for round := 1; round <= 2; round++ {
		out, err := call(req(1, 60000), req(3, 5000), req(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		a, b, c := out[0].([]any), out[1].([]any), out[2].([]any)
		if wantA := int64(map[int]int{1: 1, 2: 0}[round]); a[0] != wantA {
			t.Errorf("round %d: a allowed = %v, want %d (max 1)", round, a[0], wantA)
		}
		if b[0] != int64(1) || b[1] != int64(round) || b[2].(int64) > 5000 {
			t.Errorf("round %d: b = %v, want allowed as request %d of 3 in a 5s window", round, b[:3], round)
		}
		if c[0] != int64(1) || c[1] != int64(-1) || c[2] != int64(-1) {
			t.Errorf("round %d: uncounted c = %v", round, c[:3])
		}
	}
	if ttl := rdb.PTTL(ctx, "rl:b").Val(); ttl <= 0 || ttl.Milliseconds() > 5000 {
		t.Errorf("b's counter PTTL %s, want its own 5s window", ttl)
	}
	if n := rdb.Exists(ctx, "rl:c").Val(); n != 0 {
		t.Error("an uncounted request created a counter")
	}
	streamLen := rdb.XLen(ctx, "s").Val()

	for _, bad := range [][]any{req(1, 0), req(-1, 1000), {1, "x", 1000, "x", "y"}, {0, 1, 1000}} {
		rdb.Del(ctx, "rl:a")
		if _, err := call(req(5, 60000), bad); err == nil {
			t.Fatalf("request with %v accepted", bad)
		}
		if rdb.Exists(ctx, "rl:a").Val() != 0 || rdb.XLen(ctx, "s").Val() != streamLen {
			t.Fatalf("a bad request (%v) after a good one: the good one was written anyway", bad)
		}
	}
}
