package redisclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9/logging"

	"github.com/resilientanalytics/ra/pkg/redisclient"
)

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// go-redis' own lines (here: its dial failure) come out as JSON records of
// the service's logger, not as go-redis' plain text on stderr.
func TestSetLoggerRoutesGoRedisIntoSlog(t *testing.T) {
	var out lockedBuffer
	redisclient.SetLogger(slog.New(slog.NewJSONHandler(&out, nil)))
	t.Cleanup(logging.Enable) // go-redis' default logger again

	c, err := redisclient.New(redisclient.Config{URL: "redis://" + closedAddr(t), DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("ping of a closed port succeeded")
	}
	text := out.String()
	if !strings.Contains(text, "failed to dial") {
		t.Fatalf("go-redis' dial failure was not logged through slog: %q", text)
	}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if rec["component"] != "go-redis" || rec["level"] != "WARN" {
			t.Errorf("record %v: want component go-redis at WARN", rec)
		}
	}
}

type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

func TestDescribeSaysWhatFailedInPlainWords(t *testing.T) {
	var dialErr error
	c, err := redisclient.New(redisclient.Config{URL: "redis://" + closedAddr(t), DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dialErr = c.Ping(context.Background()).Err()
	_ = c.Close()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, "ok"},
		{"connection refused", dialErr, "unreachable"},
		{"wrapped timeout", fmt.Errorf("ping: %w", context.DeadlineExceeded), "unreachable: no answer in time"},
		{"i/o timeout", &net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}, "unreachable: no answer in time"},
		{"eof", errors.New("EOF"), "unreachable"},
		{"loading", replyErr("LOADING Redis is loading the dataset in memory"), "refusing commands: loading its data"},
		{"oom", fmt.Errorf("x: %w", replyErr("OOM command not allowed when used memory > 'maxmemory'")), "refusing commands: out of memory"},
		{"auth", replyErr("NOAUTH Authentication required."), "refusing commands: authentication failed"},
		{"other reply", replyErr("ERR unknown command"), "refusing commands"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redisclient.Describe(tt.err)
			if got != tt.want {
				t.Errorf("Describe(%v) = %q, want %q", tt.err, got, tt.want)
			}
			for _, leak := range []string{"127.0.0.1", "dial", "tcp", "EOF", "refused", "timeout", "LOADING"} {
				if strings.Contains(got, leak) {
					t.Errorf("Describe(%v) = %q quotes %q", tt.err, got, leak)
				}
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }
