package store

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestUnpackIDs(t *testing.T) {
	tests := []struct {
		name   string
		packed string
		n      int
		want   []string
		bad    bool
	}{
		{"one", "1-0", 1, []string{"1-0"}, false},
		{"a run", "1700000000000-5 +3", 4, []string{"1700000000000-5", "1700000000000-6", "1700000000000-7", "1700000000000-8"}, false},
		{"runs and breaks", "5-9 +1 6-0 7-3 +2", 6, []string{"5-9", "5-10", "6-0", "7-3", "7-4", "7-5"}, false},
		{"seq past 2^53", "1-9007199254740993 +1", 2, []string{"1-9007199254740993", "1-9007199254740994"}, false},
		{"too few", "1-0 +1", 3, nil, true},
		{"too many", "1-0 +5", 3, nil, true},
		{"run first", "+2", 2, nil, true},
		{"not an id", "abc", 1, nil, true},
		{"empty", "", 1, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := unpackIDs(tt.packed, tt.n)
			if (err != nil) != tt.bad || !slices.Equal(got, tt.want) {
				t.Fatalf("unpackIDs(%q, %d) = %v, %v; want %v (error %t)", tt.packed, tt.n, got, err, tt.want, tt.bad)
			}
		})
	}
}

func TestWriteNotRun(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"LOADING", redisErr("LOADING Redis is loading the dataset in memory"), true},
		{"OOM", redisErr("OOM command not allowed when used memory > 'maxmemory'. script: abc, on @user_script:1."), true},
		{"READONLY", redisErr("READONLY You can't write against a read only replica."), true},
		{"MOVED", redisErr("MOVED 3999 127.0.0.1:6381"), true},
		{"CLUSTERDOWN", redisErr("CLUSTERDOWN The cluster is down"), true},
		{"the script's own validation", redisErr("ERR append.lua: bad arguments"), true},
		{"a runtime fault in the script", redisErr("ERR user_script:9: attempt to index nil script: abc, on @user_script:9."), false},
		{"pool timeout", fmt.Errorf("get conn: %w", redis.ErrPoolTimeout), true},
		{"client closed", redis.ErrClosed, true},
		{"dial refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"read timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, false},
		{"reset after the write", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, false},
		{"write failed", &net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE}, false},
		{"EOF", io.EOF, false},
		{"bare deadline", context.DeadlineExceeded, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := writeNotRun(tt.err); got != tt.want {
				t.Fatalf("writeNotRun(%v) = %t, want %t", tt.err, got, tt.want)
			}
		})
	}
}

type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}
