package main_test

// Process tests: the aggregator binary is built once per test run and
// started as real processes against a redis-server each test owns, then
// killed, stopped and restarted the way production would.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/redisproc"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/internal/streamtest"
	"github.com/resilientanalytics/ra/services/aggregator/internal/trim"
)

const group = "aggregators"

// binary is the aggregator built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "aggregator-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "aggregator")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build aggregator: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's stderr.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// agg is one running aggregator process.
type agg struct {
	name   string
	port   int
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error // set before done is closed
}

// startAgg runs the binary with fast test settings plus env. The process is
// killed when the test ends; its log is printed when the test failed.
func startAgg(t *testing.T, redisURL, name string, env ...string) *agg {
	t.Helper()
	port, err := redisproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"REDIS_URL=" + redisURL,
		"CONSUMER_NAME=" + name,
		"AGG_HEALTH_PORT=" + strconv.Itoa(port),
		"AGG_BLOCK=200ms",
		"AGG_CLAIM_INTERVAL=300ms",
		"AGG_CLAIM_MIN_IDLE=500ms",
		"AGG_TRIM_INTERVAL=1h",
		"SHUTDOWN_TIMEOUT=5s",
	}, env...)
	a := &agg{name: name, port: port, cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = a.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		a.err = cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-a.done
		if t.Failed() {
			t.Logf("--- log of %s:\n%s", name, a.stderr.String())
		}
	})
	return a
}

// stop sends sig and returns the exit code (-1 when killed by a signal).
func (a *agg) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	_ = a.cmd.Process.Signal(sig)
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not exit within 15s of %v", a.name, sig)
	}
	var ee *exec.ExitError
	if errors.As(a.err, &ee) {
		return ee.ExitCode()
	}
	if a.err != nil {
		t.Fatalf("wait %s: %v", a.name, a.err)
	}
	return 0
}

func (a *agg) running() bool {
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

func (a *agg) healthStatus() int {
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(a.port) + "/health")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// workload returns n metrics of several types with small integer values, so
// float sums are exact whatever the order of addition.
func workload(n, offset int) []metric.Metric {
	types := []string{"cpu_usage", "memory", "disk.io", "net:rx"}
	out := make([]metric.Metric, n)
	for i := range out {
		j := i + offset
		out[i] = streamtest.Metric(types[j%len(types)], float64(j%97), int64(1_771_000_000+j))
	}
	return out
}

// waitExact waits until every summary equals want and nothing is pending.
func waitExact(t *testing.T, rdb *redis.Client, k store.Keys, want streamtest.Expect, timeout time.Duration) {
	t.Helper()
	streamtest.Eventually(t, timeout, func() string {
		if d := want.Diff(t, rdb, k); d != "" {
			return d
		}
		if n := streamtest.Pending(t, rdb, k.Stream(0), group); n != 0 {
			return fmt.Sprintf("XPENDING reports %d entries", n)
		}
		return ""
	})
}

func TestBadConfigExitsTwoWithOneLine(t *testing.T) {
	cmd := exec.Command(binary)
	cmd.Env = []string{"AGG_BLOCK=0"}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("err = %v, want exit status 2", err)
	}
	if got := string(out); !strings.HasPrefix(got, "config: AGG_BLOCK:") || strings.Count(got, "\n") != 1 {
		t.Errorf("output %q, want one line starting with \"config: AGG_BLOCK:\"", got)
	}
}

// TestCrashSafetySIGKILL: two replicas consume while metrics arrive; one is
// SIGKILLed mid-stream with a batch in hand, a third starts. Every type's
// count and sum equal what was written and nothing is left pending.
func TestCrashSafetySIGKILL(t *testing.T) {
	srv := redistest.Start(t)
	srv.RequireReal(t)
	rdb := srv.Client(t)
	k := store.NewKeys(store.DefaultFamily)
	const n = 12_000
	ms := workload(n, 0)
	want := streamtest.Expect{}
	want.Add(ms...)

	small := "AGG_BATCH_SIZE=50"
	a := startAgg(t, srv.URL(), "replica-a", small)
	startAgg(t, srv.URL(), "replica-b", small)
	var c *agg
	const chunk = 200
	for off := 0; off < n; off += chunk {
		if off == n/3 {
			// A burst keeps both replicas busy, so the SIGKILL very likely
			// finds replica-a with a batch delivered but not yet applied.
			streamtest.Add(t, rdb, k.Stream(0), ms[off:off+2000]...)
			off += 2000 - chunk
			time.Sleep(2 * time.Millisecond)
			if code := a.stop(t, syscall.SIGKILL); code != -1 {
				t.Fatalf("replica-a exit code %d after SIGKILL", code)
			}
			owned := rdb.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: k.Stream(0), Group: group,
				Start: "-", End: "+", Count: 1000, Consumer: "replica-a"}).Val()
			t.Logf("replica-a died owning %d pending entries", len(owned))
			continue
		}
		streamtest.Add(t, rdb, k.Stream(0), ms[off:off+chunk]...)
		if off == 2*n/3 {
			c = startAgg(t, srv.URL(), "replica-c", small)
		}
		time.Sleep(5 * time.Millisecond) // let the replicas interleave with the writer
	}
	waitExact(t, rdb, k, want, 30*time.Second)
	if l := rdb.XLen(context.Background(), k.Dead(0)).Val(); l != 0 {
		t.Errorf("%d entries dead-lettered, want 0", l)
	}
	if !c.running() {
		t.Error("replica-c exited")
	}
}

// TestPreexistingEntriesAndSIGTERM: entries written before any aggregator
// ran are counted; SIGTERM exits 0 and leaves no consumer and nothing
// pending behind.
func TestPreexistingEntriesAndSIGTERM(t *testing.T) {
	srv := redistest.Start(t)
	srv.RequireReal(t)
	rdb := srv.Client(t)
	k := store.NewKeys(store.DefaultFamily)
	ms := workload(3000, 0)
	streamtest.Add(t, rdb, k.Stream(0), ms...) // no group exists yet
	want := streamtest.Expect{}
	want.Add(ms...)

	a := startAgg(t, srv.URL(), "solo")
	waitExact(t, rdb, k, want, 20*time.Second)
	streamtest.Eventually(t, 5*time.Second, func() string {
		if s := a.healthStatus(); s != http.StatusOK {
			return fmt.Sprintf("/health = %d", s)
		}
		return ""
	})
	// More entries just before the signal: the batch in hand is finished.
	more := workload(500, 3000)
	streamtest.Add(t, rdb, k.Stream(0), more...)
	if code := a.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	ctx := context.Background()
	if p := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: k.Stream(0), Group: group, Start: "-", End: "+", Count: 10, Consumer: "solo"}).Val(); len(p) != 0 {
		t.Errorf("solo left %d pending entries", len(p))
	}
	for _, c := range rdb.XInfoConsumers(ctx, k.Stream(0), group).Val() {
		if c.Name == "solo" {
			t.Errorf("consumer solo still registered after a clean shutdown")
		}
	}
	if !strings.Contains(a.stderr.String(), `"msg":"left the group"`) {
		t.Error("no 'left the group' log line")
	}
	// Whatever it did not read is consumed by the next replica.
	want.Add(more...)
	startAgg(t, srv.URL(), "next")
	waitExact(t, rdb, k, want, 20*time.Second)
}

// TestTrimKeepsUnprocessedEntries: write, stop the aggregator, trim, restart,
// count exact. Entries undelivered or pending (to a dead consumer) when the
// trim runs survive it and are counted after the restart.
func TestTrimKeepsUnprocessedEntries(t *testing.T) {
	srv := redistest.Start(t)
	srv.RequireReal(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	k := store.NewKeys(store.DefaultFamily)
	stream := k.Stream(0)
	want := streamtest.Expect{}

	first := workload(1000, 0)
	want.Add(first...)
	streamtest.Add(t, rdb, stream, first...)
	a := startAgg(t, srv.URL(), "trimmer", "STREAM_RETENTION=0", "AGG_TRIM_INTERVAL=200ms")
	waitExact(t, rdb, k, want, 20*time.Second)
	streamtest.Eventually(t, 10*time.Second, func() string {
		if l := rdb.XLen(ctx, stream).Val(); l > 1 {
			return fmt.Sprintf("processed entries not trimmed: len %d", l)
		}
		return ""
	})
	if code := a.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	// With the aggregator stopped: 1000 new entries, 300 of them delivered
	// to a consumer that then died (pending), 700 undelivered.
	second := workload(1000, 1000)
	want.Add(second...)
	streamtest.Add(t, rdb, stream, second...)
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "ghost", Streams: []string{stream, ">"}, Count: 300, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
	tr, err := trim.New(streamtest.Store(t, rdb, k.Family(), 1), trim.Options{Partition: 0, Retention: 0})
	if err != nil {
		t.Fatal(err)
	}
	if n, minID, err := tr.Once(ctx); err != nil || n != 0 {
		t.Fatalf("trim removed %d entries below %q (err %v), want 0: all are unprocessed", n, minID, err)
	}
	if l := rdb.XLen(ctx, stream).Val(); l < 1000 {
		t.Fatalf("len %d after trim, want all 1000 unprocessed entries kept", l)
	}

	startAgg(t, srv.URL(), "trimmer-2", "STREAM_RETENTION=0", "AGG_TRIM_INTERVAL=200ms")
	waitExact(t, rdb, k, want, 20*time.Second)
}

// TestRedisKilledAndRestarted: Redis is SIGKILLed while the aggregator runs
// and restarted from its AOF. The process survives (backs off), the empty
// script cache (NOSCRIPT) is handled, and the totals are exact.
func TestRedisKilledAndRestarted(t *testing.T) {
	// appendfsync always: every acknowledged write survives the SIGKILL, so
	// exact totals are a fair demand (with everysec the last second of
	// writes, ingest included, may be lost; see docs/architecture.md).
	srv := redistest.StartWith(t, redistest.Options{AOF: true, Args: []string{"--appendfsync", "always"}})
	srv.RequireReal(t)
	rdb := srv.Client(t)
	k := store.NewKeys(store.DefaultFamily)
	first := workload(6000, 0)
	want := streamtest.Expect{}
	want.Add(first...)
	streamtest.Add(t, rdb, k.Stream(0), first...)

	a := startAgg(t, srv.URL(), "survivor", "AGG_BATCH_SIZE=20")
	streamtest.Eventually(t, 10*time.Second, func() string {
		if s, ok := streamtest.Summary(t, rdb, k, "cpu_usage"); !ok || s.Count == 0 {
			return "nothing applied yet"
		}
		return ""
	})
	srv.Kill(t)
	time.Sleep(700 * time.Millisecond)
	if !a.running() {
		t.Fatal("the aggregator exited while Redis was down")
	}
	srv.Restart(t)
	second := workload(2000, 6000)
	want.Add(second...)
	streamtest.Add(t, rdb, k.Stream(0), second...)
	waitExact(t, rdb, k, want, 30*time.Second)
	streamtest.Eventually(t, 10*time.Second, func() string {
		if s := a.healthStatus(); s != http.StatusOK {
			return fmt.Sprintf("/health = %d after Redis came back", s)
		}
		return ""
	})
	if !strings.Contains(a.stderr.String(), "backing off") {
		t.Error("no backoff logged while Redis was down")
	}
	if code := a.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}
