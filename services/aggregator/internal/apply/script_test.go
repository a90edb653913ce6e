package apply

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/keys"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/summary"
	"github.com/resilientanalytics/ra/services/aggregator/internal/streamtest"
)

// TestScriptRejectsBadBatchWithoutWriting calls apply.lua with arguments the
// Go side would never build, to prove the script checks everything before
// its first write: a batch with one bad entry leaves every entry pending
// (none acknowledged without being folded) and no summary written.
func TestScriptRejectsBadBatchWithoutWriting(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	k := keys.New("metrics")
	stream, sum := k.Stream(0), k.Summary(0, "cpu")
	if err := rdb.XGroupCreateMkStream(ctx, stream, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	fields := []any{summary.FieldCount, summary.FieldSum, summary.FieldMin, summary.FieldMax, summary.FieldFirstTS, summary.FieldLastTS}
	script := redis.NewScript(applySrc)

	tests := []struct {
		name string
		bad  []any // the last entry's id, key index, value, ts ("" id = use a real one)
		want string
	}{
		{"value not a number", []any{"", 2, "abc", 1}, "value not finite"},
		{"value nan", []any{"", 2, "nan", 1}, "value not finite"},
		{"value inf", []any{"", 2, "inf", 1}, "value not finite"},
		{"ts fractional", []any{"", 2, 1, "1.5"}, "bad ts"},
		{"ts negative", []any{"", 2, 1, "-1"}, "bad ts"},
		{"ts beyond 2^53", []any{"", 2, 1, "9007199254740993000"}, "bad ts"},
		{"key index is the stream", []any{"", 1, 1, 1}, "bad key index"},
		{"key index out of range", []any{"", 3, 1, 1}, "bad key index"},
		{"bad id", []any{"x-1", 2, 1, 1}, "bad id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids := streamtest.Add(t, rdb, stream, streamtest.Metric("cpu", 1, 1), streamtest.Metric("cpu", 2, 2), streamtest.Metric("cpu", 3, 3))
			if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, ">"}, Count: 10, Block: -1}).Err(); err != nil {
				t.Fatal(err)
			}
			before := streamtest.Pending(t, rdb, stream, "g")
			bad := append([]any(nil), tt.bad...)
			if bad[0] == "" {
				bad[0] = ids[2]
			}
			args := append([]any{"g"}, fields...)
			args = append(args, 3, ids[0], 2, 1, 1, ids[1], 2, 2, 2)
			args = append(args, bad...)
			err := script.Run(ctx, rdb, []string{stream, sum}, args...).Err()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if after := streamtest.Pending(t, rdb, stream, "g"); after != before {
				t.Errorf("pending %d -> %d: the script acknowledged entries before failing", before, after)
			}
			if n := rdb.Exists(ctx, sum).Val(); n != 0 {
				t.Error("the script wrote a summary before failing")
			}
			// Clean up for the next case: acknowledge by hand.
			rdb.XAck(ctx, stream, "g", ids...)
		})
	}

	t.Run("wrong argument count", func(t *testing.T) {
		args := append([]any{"g"}, fields...)
		args = append(args, 2, "1-1", 2, 1, 1)
		if err := script.Run(ctx, rdb, []string{stream, sum}, args...).Err(); err == nil || !strings.Contains(err.Error(), "args") {
			t.Errorf("err = %v", err)
		}
	})
}
