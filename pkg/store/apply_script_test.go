package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redistest"
)

// TestScriptRejectsBadBatchWithoutWriting calls apply.lua with arguments the
// Go side would never build, to prove the script checks everything before
// its first write: a batch with one bad entry leaves every entry pending
// (none acknowledged without being folded) and no summary, bucket or type
// written.
func TestScriptRejectsBadBatchWithoutWriting(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	k := NewKeys("metrics")
	const hour = 1 // the Unix hour of the bucket key: ts 3600e6 .. 7200e6-1
	stream, types, admitted, sum, bkt := k.Stream(0), k.Types(0), k.AdmittedTypes(0), k.Summary(0, "cpu"), k.Bucket(0, "cpu", hour)
	if err := rdb.XGroupCreateMkStream(ctx, stream, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	fields := []any{SummaryCount, SummarySum, SummaryMin, SummaryMax, SummaryFirstTS, SummaryLastTS}
	script := redis.NewScript(applySrc)
	// header builds ARGV up to the entries: one summary (type cpu, KEYS[4])
	// and one bucket (hour 1, KEYS[5]).
	header := func(retention any, n int) []any {
		args := append([]any{"g"}, fields...)
		return append(args, retention, 1, n, "cpu", hour)
	}
	const ts1, ts2 = 3600_000_000 + 1, 3600_000_000 + 60_000_000

	tests := []struct {
		name      string
		retention any
		bad       []any // the last entry's id, summary index, bucket index, value, ts ("" id = use a real one)
		setup     func()
		want      string
	}{
		{"value not a number", 60, []any{"", 4, 5, "abc", ts1}, nil, "value not finite"},
		{"value nan", 60, []any{"", 4, 5, "nan", ts1}, nil, "value not finite"},
		{"value inf", 60, []any{"", 4, 5, "inf", ts1}, nil, "value not finite"},
		{"ts fractional", 60, []any{"", 4, 0, 1, "1.5"}, nil, "bad ts"},
		{"ts negative", 60, []any{"", 4, 0, 1, "-1"}, nil, "bad ts"},
		{"ts beyond 2^53", 60, []any{"", 4, 0, 1, "9007199254740993000"}, nil, "bad ts"},
		{"key index is the stream", 60, []any{"", 1, 5, 1, ts1}, nil, "bad key index"},
		{"key index is the types set", 60, []any{"", 2, 5, 1, ts1}, nil, "bad key index"},
		{"key index is the admitted set", 60, []any{"", 3, 5, 1, ts1}, nil, "bad key index"},
		{"key index is a bucket", 60, []any{"", 5, 5, 1, ts1}, nil, "bad key index"},
		{"bucket index is a summary", 60, []any{"", 4, 4, 1, ts1}, nil, "bad bucket index"},
		{"bucket index out of range", 60, []any{"", 4, 6, 1, ts1}, nil, "bad bucket index"},
		{"ts outside the bucket's hour", 60, []any{"", 4, 5, 1, 7200_000_000}, nil, "outside the hour"},
		{"bad id", 60, []any{"x-1", 4, 5, 1, ts1}, nil, "bad id"},
		{"bad retention", "-5", []any{"", 4, 5, 1, ts1}, nil, "bad retention"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb.Del(ctx, bkt)
			if tt.setup != nil {
				tt.setup()
			}
			ids := addEntries(t, rdb, stream, at("cpu", 1, 3601), at("cpu", 2, 3602), at("cpu", 3, 3603))
			if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, ">"}, Count: 10, Block: -1}).Err(); err != nil {
				t.Fatal(err)
			}
			before := rdb.XPending(ctx, stream, "g").Val().Count
			bad := append([]any(nil), tt.bad...)
			if bad[0] == "" {
				bad[0] = ids[2]
			}
			args := header(tt.retention, 3)
			args = append(args, ids[0], 4, 5, 1, ts1, ids[1], 4, 5, 2, ts1)
			args = append(args, bad...)
			err := script.Run(ctx, rdb, []string{stream, types, admitted, sum, bkt}, args...).Err()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if after := rdb.XPending(ctx, stream, "g").Val().Count; after != before {
				t.Errorf("pending %d -> %d: the script acknowledged entries before failing", before, after)
			}
			if n := rdb.Exists(ctx, sum, types, admitted).Val(); n != 0 {
				t.Error("the script wrote a summary or a type before failing")
			}
			if h := rdb.HGetAll(ctx, bkt).Val(); len(h) > 0 && tt.setup == nil {
				t.Errorf("the script wrote a bucket before failing: %v", h)
			}
			// Clean up for the next case: acknowledge by hand.
			rdb.XAck(ctx, stream, "g", ids...)
		})
	}

	t.Run("wrong argument count", func(t *testing.T) {
		args := append(header(60, 2), "1-1", 4, 5, 1, ts1)
		if err := script.Run(ctx, rdb, []string{stream, types, admitted, sum, bkt}, args...).Err(); err == nil || !strings.Contains(err.Error(), "args") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("more bucket keys than keys", func(t *testing.T) {
		args := append([]any{"g"}, fields...)
		args = append(args, 60, 6, 0)
		if err := script.Run(ctx, rdb, []string{stream, types, admitted, sum, bkt}, args...).Err(); err == nil || !strings.Contains(err.Error(), "bad key count") {
			t.Errorf("err = %v", err)
		}
	})
}

// at is a metric of type typ with value v at Unix second sec.
func at(typ string, v float64, sec int64) metric.Metric {
	return metric.Metric{Type: typ, Value: v, Timestamp: time.Unix(sec, 0).UTC()}
}

// addEntries XADDs ms as the api stores them and returns their ids.
func addEntries(tb testing.TB, rdb redis.Cmdable, stream string, ms ...metric.Metric) []string {
	tb.Helper()
	ids := make([]string, len(ms))
	for i, m := range ms {
		id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: EntryFields(m)}).Result()
		if err != nil {
			tb.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}
