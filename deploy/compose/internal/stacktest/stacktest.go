// Package stacktest builds the three binaries and runs them as processes for
// the deploy tests (the compose end-to-end test and the `make run` test):
// Build compiles them as `make build` does, Run starts one under
// supervise with its output kept for the failure report, WaitHealthy polls
// with the real healthcheck binary.
package stacktest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/deploy/compose/internal/supervise"
)

// Binaries are the paths of the built programs.
type Binaries struct {
	Dir, API, Aggregator, Healthcheck string
}

// RepoRoot is the repository root, found from this source file.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("stacktest: cannot locate source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", "..", ".."))
}

// Build compiles bin/api, bin/aggregator and bin/healthcheck into a temp
// dir, static and trimmed like `make build`. Any failure, a main package
// without Go files included, fails the test: the binaries always exist in
// this repository, so a skip would only hide a broken stack suite.
func Build(tb testing.TB) Binaries {
	tb.Helper()
	root := RepoRoot(tb)
	dir := tb.TempDir()
	b := Binaries{
		Dir:         dir,
		API:         filepath.Join(dir, "api"),
		Aggregator:  filepath.Join(dir, "aggregator"),
		Healthcheck: filepath.Join(dir, "healthcheck"),
	}
	targets := []struct{ module, pkg, out string }{
		{"services/api", "./cmd/api", b.API},
		{"services/aggregator", "./cmd/aggregator", b.Aggregator},
		{"deploy/healthchecks", ".", b.Healthcheck},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(targets))
	for i, t := range targets {
		wg.Go(func() {
			cmd := exec.Command("go", "build", "-trimpath", "-o", t.out, t.pkg)
			cmd.Dir = filepath.Join(root, t.module)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("go build %s (in %s): %w\n%s", t.pkg, t.module, err, out)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	return b
}

// FreePort returns a free loopback TCP port.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Proc is a service under test.
type Proc struct {
	*supervise.Child
	Log *SyncBuffer
}

// Run starts bin with exactly env (a map, no inherited variables) and
// returns it. Its output is kept and printed if the test fails; if still
// running when the test ends it gets SIGTERM, and SIGKILL 15s later.
func Run(tb testing.TB, name, bin string, env map[string]string, args ...string) *Proc {
	tb.Helper()
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	log := &SyncBuffer{}
	c, err := supervise.Start(supervise.Options{Name: name, Path: bin, Args: args, Env: list, Out: supervise.NewOutput(log)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// Gracefully first: devrun must get the chance to stop the
		// processes it started (they run in their own process groups).
		_ = c.Stop(15 * time.Second)
		if tb.Failed() {
			tb.Logf("output of %s (pid %d):\n%s", name, c.Pid(), log.String())
		}
	})
	return &Proc{Child: c, Log: log}
}

// WaitHealthy runs `healthcheck args...` every 200ms until it exits 0, the
// process p exits, or timeout passes (then the test fails with the last
// probe's stderr).
func WaitHealthy(tb testing.TB, healthcheck string, args []string, p *Proc, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := exec.CommandContext(ctx, healthcheck, args...).CombinedOutput()
		cancel()
		if err == nil {
			return
		}
		last = strings.TrimSpace(string(out))
		if p != nil {
			select {
			case <-p.Done():
				tb.Fatalf("%s exited (%v) before it was healthy; last probe: %s", p.Name(), p.Err(), last)
			default:
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not healthy within %s: healthcheck %s: %s", timeout, strings.Join(args, " "), last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
