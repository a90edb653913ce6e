// Package streamtest helps the aggregator's tests write metrics to a stream
// and read summaries back, the way the api writes and reads them (pkg/metric
// entry codec, summary decoding from pkg/store), so tests exercise the real
// schema.
package streamtest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/store"
)

// Metric returns a metric of type typ with value v at Unix second sec.
func Metric(typ string, v float64, sec int64) metric.Metric {
	return metric.Metric{Type: typ, Value: v, Timestamp: time.Unix(sec, 0).UTC()}
}

// Add appends ms to stream with pipelined XADDs (as the api does, one entry
// per metric) and returns their ids.
func Add(tb testing.TB, rdb redis.Cmdable, stream string, ms ...metric.Metric) []string {
	tb.Helper()
	ids := make([]string, 0, len(ms))
	ctx := context.Background()
	for off := 0; off < len(ms); off += 1000 {
		end := min(off+1000, len(ms))
		cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, m := range ms[off:end] {
				p.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: store.EntryFields(m)})
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("xadd: %v", err)
		}
		for _, c := range cmds {
			ids = append(ids, c.(*redis.StringCmd).Val())
		}
	}
	return ids
}

// AddRaw appends one entry with arbitrary fields (for undecodable entries).
func AddRaw(tb testing.TB, rdb redis.Cmdable, stream string, fields ...any) string {
	tb.Helper()
	id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: fields}).Result()
	if err != nil {
		tb.Fatalf("xadd: %v", err)
	}
	return id
}

// Summary reads the summary of typ in partition 0; ok is false when none
// exists.
func Summary(tb testing.TB, rdb redis.Cmdable, k store.Keys, typ string) (store.Summary, bool) {
	tb.Helper()
	h, err := rdb.HGetAll(context.Background(), k.Summary(0, typ)).Result()
	if err != nil {
		tb.Fatalf("hgetall: %v", err)
	}
	s, ok, err := store.SummaryFromHash(h)
	if err != nil {
		tb.Fatalf("summary %s: %v", typ, err)
	}
	return s, ok
}

// Expect accumulates what the summaries should be after ms are applied.
type Expect map[string]store.Summary

// Add folds ms into e.
func (e Expect) Add(ms ...metric.Metric) {
	for _, m := range ms {
		e[m.Type] = e[m.Type].Merge(store.Summary{Cell: store.Of(m.Value), FirstTS: m.Micros(), LastTS: m.Micros()})
	}
}

// Diff compares every expected summary with Redis and describes the first
// difference, or returns "" when all match. Sums are compared exactly, so
// tests use values whose sums are exact in float64 (e.g. small integers).
func (e Expect) Diff(tb testing.TB, rdb redis.Cmdable, k store.Keys) string {
	tb.Helper()
	for typ, want := range e {
		got, _ := Summary(tb, rdb, k, typ)
		if got != want {
			return fmt.Sprintf("type %s: got %+v, want %+v", typ, got, want)
		}
	}
	return ""
}

// SummaryAll reads the summary of typ in each of partitions partitions and
// merges them, as a reader of a partitioned deployment does; ok is false
// when no partition has one.
func SummaryAll(tb testing.TB, rdb redis.Cmdable, k store.Keys, partitions int, typ string) (store.Summary, bool) {
	tb.Helper()
	var out store.Summary
	found := false
	for p := range partitions {
		h, err := rdb.HGetAll(context.Background(), k.Summary(p, typ)).Result()
		if err != nil {
			tb.Fatalf("hgetall: %v", err)
		}
		s, ok, err := store.SummaryFromHash(h)
		if err != nil {
			tb.Fatalf("summary %s partition %d: %v", typ, p, err)
		}
		if ok {
			out, found = out.Merge(s), true
		}
	}
	return out, found
}

// DiffAll is Diff over the merged summaries of partitions partitions.
func (e Expect) DiffAll(tb testing.TB, rdb redis.Cmdable, k store.Keys, partitions int) string {
	tb.Helper()
	for typ, want := range e {
		got, _ := SummaryAll(tb, rdb, k, partitions, typ)
		if got != want {
			return fmt.Sprintf("type %s over %d partitions: got %+v, want %+v", typ, partitions, got, want)
		}
	}
	return ""
}

// Pending is the group's pending-entries count (0 when the group is gone).
func Pending(tb testing.TB, rdb redis.Cmdable, stream, group string) int64 {
	tb.Helper()
	p, err := rdb.XPending(context.Background(), stream, group).Result()
	if err != nil {
		tb.Fatalf("xpending: %v", err)
	}
	return p.Count
}

// Eventually polls cond every 20ms until it returns "" or timeout passes,
// then fails with cond's last message.
func Eventually(tb testing.TB, timeout time.Duration, cond func() string) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ServiceClient returns the client the aggregator itself uses (pkg/redisclient:
// no retries, 1s timeouts) for url, closed when the test ends. Components
// under test must use it rather than a default go-redis client: that one
// retries commands, and a retried XREADGROUP can deliver a batch whose reply
// nobody sees.
func ServiceClient(tb testing.TB, url string) redis.UniversalClient {
	tb.Helper()
	c, err := redisclient.New(redisclient.Config{URL: url, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	if err != nil {
		tb.Fatalf("redis client: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Logger returns a logger that writes to tb's log.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Store returns the data model of family (STREAM_KEY) on rdb with
// partitions partitions.
func Store(tb testing.TB, rdb redis.UniversalClient, family string, partitions int) *store.Store {
	tb.Helper()
	st, err := store.New(rdb, family, partitions)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// Group returns consumer group name of partition p of family on rdb.
func Group(tb testing.TB, rdb redis.UniversalClient, family string, p int, name string) *store.Group {
	tb.Helper()
	return Store(tb, rdb, family, p+1).Group(p, name)
}

// EnsureGroup creates group name on partition p of family at id 0.
func EnsureGroup(tb testing.TB, rdb redis.UniversalClient, family string, p int, name string) {
	tb.Helper()
	if err := Group(tb, rdb, family, p, name).Ensure(context.Background()); err != nil {
		tb.Fatal(err)
	}
}

// Entries converts go-redis stream messages to the store's entries.
func Entries(msgs []redis.XMessage) []store.Entry {
	out := make([]store.Entry, len(msgs))
	for i, m := range msgs {
		out[i] = store.Entry{ID: m.ID, Values: m.Values}
	}
	return out
}
