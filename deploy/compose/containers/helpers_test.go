package containers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/deploy/compose/internal/dockerstack"
)

// Key names of the documented layout (docs/operations.md): the suite reads
// Redis as an operator would, through redis-cli in the redis container.
const (
	group = "aggregators"
	// trustedProxies covers the addresses Docker gives its bridge
	// gateways: the api sees every host client as the gateway, and the
	// tests tell clients apart with X-Forwarded-For.
	trustedProxies = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
)

func streamKey(p int) string              { return fmt.Sprintf("{metrics:%d}:stream", p) }
func summaryKey(p int, typ string) string { return fmt.Sprintf("{metrics:%d}:summary:%s", p, typ) }

var setup struct {
	once   sync.Once
	images dockerstack.Images
	err    error
	skip   string
}

// requireDocker skips the test when no engine answers (fails it when
// REQUIRE_DOCKER=1) and returns the images the stack runs with, resolved
// once per test binary and printed.
func requireDocker(t *testing.T) dockerstack.Images {
	t.Helper()
	setup.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		if err := dockerstack.Check(ctx); err != nil {
			setup.skip = err.Error()
			return
		}
		setup.images, setup.err = dockerstack.Resolve(ctx, func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
		if setup.err != nil {
			return
		}
		fmt.Fprintf(os.Stderr, "container tests use these images:\n%s", setup.images)
		setup.err = warmBuild(ctx, setup.images)
	})
	if setup.skip != "" {
		if os.Getenv("REQUIRE_DOCKER") == "1" {
			t.Fatalf("REQUIRE_DOCKER=1 but %s (deploy/ci/docker.sh installs and starts one)", setup.skip)
		}
		t.Skipf("container tests skipped: %s (set REQUIRE_DOCKER=1 to make this a failure; deploy/ci/docker.sh installs one)", setup.skip)
	}
	if setup.err != nil {
		t.Fatal(setup.err)
	}
	t.Logf("images:\n%s", setup.images)
	return setup.images
}

// warmBuild builds the two service images once, one after the other,
// before any stack: `up --build` builds both at once, and from a cold cache
// two concurrent Go builds on two cores take about twice as long as two in
// a row (the second reuses the first's module downloads and packages).
// Every later build of the run finds its layers in the builder's cache.
func warmBuild(ctx context.Context, images dockerstack.Images) error {
	p := &dockerstack.Project{Name: "ra-ct-warm", Dir: repoRoot(), Env: images.Env()}
	start := time.Now()
	for _, svc := range []string{"api", "aggregator"} {
		if _, err := p.Compose(ctx, "build", svc); err != nil {
			return err
		}
	}
	// The layers stay in the build cache; the images themselves are not needed.
	_, _ = dockerstack.Docker(ctx, nil, "image", "rm", p.Name+"-api", p.Name+"-aggregator")
	fmt.Fprintf(os.Stderr, "service images built in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// repoRoot is the repository root, found from this file.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// stack is a compose project under test.
type stack struct {
	*dockerstack.Project
	t    *testing.T
	base string // the api's published address
}

// newStack makes a project with a unique name over files (none: the root
// compose.yaml), the images, a free host port for the api and env. Its
// cleanup prints the logs when the test failed and runs `down -v`.
func newStack(t *testing.T, images dockerstack.Images, files []string, env map[string]string) *stack {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	port := freePort(t)
	all := images.Env()
	all["PORT"] = strconv.Itoa(port)
	maps.Copy(all, env)
	s := &stack{
		Project: &dockerstack.Project{Name: "ra-ct-" + hex.EncodeToString(b), Dir: repoRoot(), Files: files, Env: all},
		t:       t,
		base:    "http://127.0.0.1:" + strconv.Itoa(port),
	}
	t.Logf("compose project %s, api on %s", s.Name, s.base)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			if out, err := s.Compose(ctx, "logs", "--no-color", "--tail", "60"); err == nil {
				t.Logf("logs of %s:\n%s", s.Name, out)
			}
		}
		if _, err := s.Compose(ctx, "down", "-v", "--remove-orphans", "--rmi", "local", "--timeout", "20"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return s
}

// compose runs a compose command and fails the test when it fails.
func (s *stack) compose(args ...string) []byte {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := s.Compose(ctx, args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

func (s *stack) ps() []dockerstack.Container {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := s.PS(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	return cs
}

// containers returns the project's containers of service.
func (s *stack) containers(service string) []dockerstack.Container {
	s.t.Helper()
	var out []dockerstack.Container
	for _, c := range s.ps() {
		if c.Service == service {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b dockerstack.Container) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// waitHealthy polls `compose ps` until service has n containers, all
// running and healthy.
func (s *stack) waitHealthy(service string, n int, timeout time.Duration) {
	s.t.Helper()
	var cs []dockerstack.Container
	eventually(s.t, timeout, func() bool {
		cs = s.containers(service)
		healthy := 0
		for _, c := range cs {
			if c.State == "running" && c.Health == "healthy" {
				healthy++
			}
		}
		return healthy == n && len(cs) == n
	}, func() string { return fmt.Sprintf("%s: want %d healthy containers, have %+v", service, n, cs) })
}

// redis runs redis-cli in service with one command a line (fed on stdin)
// and returns the replies, decoded from its --json output. Extra args come
// before the commands (e.g. -c -h redis-2).
func (s *stack) redis(service string, args []string, cmds ...string) ([]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := strings.Join(cmds, "\n") + "\n"
	out, err := s.Exec(ctx, strings.NewReader(in), service, append([]string{"redis-cli", "-3", "--json"}, args...)...)
	if err != nil {
		return nil, err
	}
	// -c prints its redirects among the replies.
	var kept [][]byte
	for _, line := range bytes.Split(out, []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("-> Redirected")) {
			kept = append(kept, line)
		}
	}
	out = bytes.Join(kept, []byte("\n"))
	dec := json.NewDecoder(bytes.NewReader(out))
	var replies []any
	for {
		var v any
		if err := dec.Decode(&v); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("redis-cli output %q: %w", out, err)
		}
		replies = append(replies, v)
	}
	if len(replies) != len(cmds) {
		return nil, fmt.Errorf("redis-cli gave %d replies to %d commands: %s", len(replies), len(cmds), out)
	}
	return replies, nil
}

// mustRedis is redis that fails the test on error.
func (s *stack) mustRedis(service string, args []string, cmds ...string) []any {
	s.t.Helper()
	r, err := s.redis(service, args, cmds...)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// counts reads the summary count of each type on partition 0 of the
// single-node stack (0 where there is no summary yet).
func (s *stack) counts(types ...string) map[string]int {
	s.t.Helper()
	var cmds []string
	for _, typ := range types {
		cmds = append(cmds, "HGET "+summaryKey(0, typ)+" count")
	}
	out := map[string]int{}
	for i, r := range s.mustRedis("redis", nil, cmds...) {
		out[types[i]] = toInt(r)
	}
	return out
}

// waitCounts waits until every type's summary count is exactly want,
// fails at once if one passes it (a double count), and checks once more a
// moment later that none moved on.
func (s *stack) waitCounts(read func() map[string]int, want map[string]int, timeout time.Duration) {
	s.t.Helper()
	var got map[string]int
	eventually(s.t, timeout, func() bool {
		got = read()
		for typ, n := range want {
			if got[typ] > n {
				s.t.Fatalf("summary %s counts %d, only %d were accepted: counted twice", typ, got[typ], n)
			}
		}
		return maps.Equal(got, want)
	}, func() string { return fmt.Sprintf("summary counts %v, want %v", got, want) })
	time.Sleep(time.Second) // a late duplicate apply would show now
	if again := read(); !maps.Equal(again, want) {
		s.t.Fatalf("summary counts moved from %v to %v after all were applied: counted twice", want, again)
	}
}

func toInt(v any) int {
	switch x := v.(type) {
	case float64:
		return int(x)
	case string:
		n, _ := strconv.Atoi(x)
		return n
	}
	return 0
}

// eventually polls cond every 250ms until it holds or timeout passes; then
// the test fails with what().
func eventually(t *testing.T, timeout time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// freePort returns a TCP port free on every host address (compose
// publishes on all of them).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// reply is one HTTP answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

var client = &http.Client{Timeout: 15 * time.Second}

// call sends one request; xff, when set, names the client (the api trusts
// the bridge gateway's X-Forwarded-For).
func call(method, url, body, xff string) (reply, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return reply{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}, err
}

func mustCall(t *testing.T, method, url, body, xff string) reply {
	t.Helper()
	r, err := call(method, url, body, xff)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// metrics is a JSON batch of n metrics of typ, value v each, stamped now.
func metrics(typ string, n int, v float64) string {
	ts := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"timestamp":%q,"value":%g,"type":%q}`, ts, v, typ)
	}
	return "[" + strings.Join(items, ",") + "]"
}

// clientIP is the i-th made-up client address, from the benchmarking range
// 198.18.0.0/15 (only ever a header value, never a peer). Each scenario
// takes its own range of i, so no client passes its rate limit.
func clientIP(i int) string {
	return fmt.Sprintf("198.%d.%d.%d", 18+i/65536%2, i/256%256, i%256)
}

// load posts batches of size metrics of typ from ever new clients until
// stop is closed, and returns how many metrics were accepted (201) and
// the answers that were not 201, for the caller to report.
type load struct {
	typ      string
	accepted int
	bad      []string
	done     chan struct{}
	stop     chan struct{}
}

func startLoad(base, typ string, first, size int) *load {
	l := &load{typ: typ, done: make(chan struct{}), stop: make(chan struct{})}
	go func() {
		defer close(l.done)
		body := metrics(typ, size, 1)
		for i := first; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			r, err := call(http.MethodPost, base+"/api/metrics", body, clientIP(i))
			switch {
			case err != nil:
				l.bad = append(l.bad, err.Error())
			case r.status == http.StatusCreated:
				l.accepted += size
			default:
				l.bad = append(l.bad, fmt.Sprintf("%d %s", r.status, r.body))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return l
}

// end stops the load and fails t if any request was not accepted.
func (l *load) end(t *testing.T) int {
	t.Helper()
	close(l.stop)
	<-l.done
	if len(l.bad) > 0 {
		t.Errorf("%d requests of the %s load were not accepted, first: %s", len(l.bad), l.typ, l.bad[0])
	}
	if l.accepted == 0 {
		t.Fatalf("the %s load got nothing accepted", l.typ)
	}
	return l.accepted
}
