// Package redistest gives each test its own Redis: a real redis-server on a
// free loopback port in a temp dir, which a fault test may stop, kill and
// restart. Without a redis-server binary, and unless REQUIRE_REAL_REDIS is
// set, it falls back to an embedded miniredis and says so in the test log;
// fault tests then skip with a reason. CI sets REQUIRE_REAL_REDIS=1 so a
// missing binary fails loudly instead.
package redistest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redisproc"
)

// Options configure the server a test gets.
type Options struct {
	// AOF turns on appendonly, so data survives Kill + Restart.
	AOF bool
	// Fsync is appendfsync with AOF on: "" or redisproc.FsyncAlways (every
	// acknowledged write survives a kill), redisproc.FsyncEverysec or
	// redisproc.FsyncNo.
	Fsync string
	// Args are extra redis-server arguments.
	Args []string
}

// Server is a Redis for one test.
type Server struct {
	tb   testing.TB
	proc *redisproc.Server
	mini *miniredis.Miniredis
}

// Start returns a running Redis without persistence.
func Start(tb testing.TB) *Server { return StartWith(tb, Options{}) }

// StartWith returns a running Redis configured by opts. It is stopped when
// the test ends.
func StartWith(tb testing.TB, opts Options) *Server {
	tb.Helper()
	_, err := redisproc.Binary()
	if errors.Is(err, redisproc.ErrNoBinary) {
		if os.Getenv("REQUIRE_REAL_REDIS") != "" {
			tb.Fatalf("REQUIRE_REAL_REDIS is set but %v: install it (apt-get install -y redis-server)", err)
		}
		m := miniredis.NewMiniRedis()
		if err := m.Start(); err != nil {
			tb.Fatalf("start embedded redis: %v", err)
		}
		tb.Logf("redistest: no redis-server on PATH; using embedded miniredis (fault tests skip)")
		tb.Cleanup(m.Close)
		return &Server{tb: tb, mini: m}
	}
	proc, err := redisproc.Start(context.Background(), redisproc.Options{Dir: tb.TempDir(), AOF: opts.AOF, Fsync: opts.Fsync, Args: opts.Args})
	if err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	tb.Cleanup(func() { _ = proc.Kill() })
	return &Server{tb: tb, proc: proc}
}

// Real reports whether this is a real redis-server.
func (s *Server) Real() bool { return s.proc != nil }

// RequireReal skips tb when the server is the embedded fallback.
func (s *Server) RequireReal(tb testing.TB) {
	tb.Helper()
	if !s.Real() {
		tb.Skip("needs a real redis-server (stop/kill/restart); none is installed")
	}
}

// Addr is host:port.
func (s *Server) Addr() string {
	if s.mini != nil {
		return s.mini.Addr()
	}
	return s.proc.Addr()
}

// URL is the redis:// URL to give a service under test.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Dir is the data directory (real server only).
func (s *Server) Dir() string {
	if s.proc == nil {
		return ""
	}
	return s.proc.Dir()
}

// Client returns a go-redis client for the test's own assertions, closed
// when the test ends.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DialTimeout: time.Second, ReadTimeout: 5 * time.Second})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop shuts Redis down gracefully.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	s.RequireReal(tb)
	if err := s.proc.Stop(); err != nil {
		tb.Fatalf("stop redis: %v", err)
	}
}

// Kill ends Redis with SIGKILL.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	s.RequireReal(tb)
	if err := s.proc.Kill(); err != nil {
		tb.Fatalf("kill redis: %v", err)
	}
}

// Restart starts a stopped or killed Redis again on the same port and dir.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.RequireReal(tb)
	if err := s.proc.Restart(context.Background()); err != nil {
		tb.Fatalf("restart redis: %v", err)
	}
}

// Pause freezes Redis with SIGSTOP: connections are still accepted and
// commands sent, but no reply comes until Resume. Resume runs at the end
// of the test too, so a paused server is always stopped cleanly.
func (s *Server) Pause(tb testing.TB) {
	tb.Helper()
	s.RequireReal(tb)
	if err := s.proc.Pause(); err != nil {
		tb.Fatalf("pause redis: %v", err)
	}
	tb.Cleanup(func() { _ = s.proc.Resume() })
}

// Resume continues a paused Redis (SIGCONT).
func (s *Server) Resume(tb testing.TB) {
	tb.Helper()
	s.RequireReal(tb)
	if err := s.proc.Resume(); err != nil {
		tb.Fatalf("resume redis: %v", err)
	}
}

// Proc is the redis-server process (nil for the embedded fallback), for
// tests that signal it from another goroutine, where tb.Fatal must not be
// called.
func (s *Server) Proc() *redisproc.Server { return s.proc }
