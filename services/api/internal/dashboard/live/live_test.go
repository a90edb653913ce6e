package live

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/resilientanalytics/ra/pkg/store"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/services/api/internal/cache"
	"github.com/resilientanalytics/ra/services/api/internal/window"
)

// fakeSource counts reads per type and answers with the read's number, so
// a test can tell which read an event came from.
type fakeSource struct {
	mu      sync.Mutex
	series  map[string]int
	summary atomic.Int64
	err     error
}

func (f *fakeSource) Series(_ context.Context, q window.Query) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if f.series == nil {
		f.series = map[string]int{}
	}
	f.series[q.Type]++
	return json.Marshal(map[string]any{"type": q.Type, "read": f.series[q.Type], "points": q.Points()})
}

func (f *fakeSource) Summary(_ context.Context, typ string) ([]byte, error) {
	f.summary.Add(1)
	return json.Marshal(map[string]any{"type": typ, "count": 1})
}

func (f *fakeSource) reads(typ string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.series[typ]
}

// manualTicks replaces the hub's tickers by channels the test drives.
type manualTicks struct {
	mu sync.Mutex
	ch []chan time.Time
}

func (m *manualTicks) make(time.Duration) (<-chan time.Time, func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := make(chan time.Time)
	m.ch = append(m.ch, c)
	return c, func() {}
}

// tick fires every feed's ticker once (each send waits for its feed).
func (m *manualTicks) tick(t *testing.T) {
	t.Helper()
	m.mu.Lock()
	chs := append([]chan time.Time(nil), m.ch...)
	m.mu.Unlock()
	for _, c := range chs {
		select {
		case c <- time.Now():
		case <-time.After(10 * time.Second):
			t.Fatal("a feed did not wait for its tick")
		}
	}
}

func newHub(t *testing.T, src Source, opts Options) (*Hub, *manualTicks, *httptest.Server) {
	t.Helper()
	if opts.Retention == 0 {
		opts.Retention = 168 * time.Hour
	}
	h, err := New(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	ticks := &manualTicks{}
	h.ticks = ticks.make
	srv := httptest.NewServer(h)
	t.Cleanup(func() { h.Close(); srv.Close() })
	return h, ticks, srv
}

// stream is one open client stream.
type stream struct {
	resp   *http.Response
	lines  *bufio.Reader
	cancel context.CancelFunc
}

func open(t *testing.T, url string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &stream{resp: resp, lines: bufio.NewReader(resp.Body), cancel: cancel}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return s
}

// next reads the next event or comment block ("event: x\ndata: y" or ": heartbeat").
func (s *stream) next(t *testing.T) string {
	t.Helper()
	var block []string
	for {
		line, err := s.lines.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v (so far %q)", err, block)
		}
		line = strings.TrimRight(line, "\n")
		if line == "" {
			if len(block) > 0 {
				return strings.Join(block, "\n")
			}
			continue
		}
		block = append(block, line)
	}
}

// nextEvent skips the retry hint and heartbeats.
func (s *stream) nextEvent(t *testing.T) (name string, data map[string]json.RawMessage) {
	t.Helper()
	for {
		b := s.next(t)
		if strings.HasPrefix(b, ":") || strings.HasPrefix(b, "retry:") {
			continue
		}
		head, body, _ := strings.Cut(b, "\n")
		if err := json.Unmarshal([]byte(strings.TrimPrefix(body, "data: ")), &data); err != nil {
			t.Fatalf("event %q: %v", b, err)
		}
		return strings.TrimPrefix(head, "event: "), data
	}
}

func readOf(t *testing.T, data map[string]json.RawMessage) int {
	t.Helper()
	var s struct {
		Read int `json:"read"`
	}
	if err := json.Unmarshal(data["series"], &s); err != nil {
		t.Fatalf("series %s: %v", data["series"], err)
	}
	return s.Read
}

func TestStreamsOfOneTypeShareOneReadPerTick(t *testing.T) {
	src := &fakeSource{}
	h, ticks, srv := newHub(t, src, Options{Heartbeat: time.Hour})
	const n = 10
	var streams []*stream
	for range n {
		s := open(t, srv.URL+"?type=cpu&window=1h")
		if name, data := s.nextEvent(t); name != "update" || readOf(t, data) != 1 {
			t.Fatalf("first event %s %v, want the update of read 1", name, data)
		}
		streams = append(streams, s)
	}
	other := open(t, srv.URL+"?type=mem&window=1h")
	other.nextEvent(t)
	if got := h.Open(); got != n+1 {
		t.Fatalf("Open() = %d, want %d", got, n+1)
	}
	for round := 2; round <= 4; round++ {
		ticks.tick(t)
		for i, s := range streams {
			if _, data := s.nextEvent(t); readOf(t, data) != round {
				t.Fatalf("round %d, stream %d: got read %d", round, i, readOf(t, data))
			}
		}
		if _, data := other.nextEvent(t); readOf(t, data) != round {
			t.Fatalf("round %d, other type: got read %d", round, readOf(t, data))
		}
	}
	if got := src.reads("cpu"); got != 4 {
		t.Errorf("%d streams over 4 rounds made %d reads of cpu, want 4 (one per tick)", n, got)
	}
	if got := src.reads("mem"); got != 4 {
		t.Errorf("the other type's feed made %d reads, want 4", got)
	}
}

func TestStreamCapAnswers503Problem(t *testing.T) {
	_, _, srv := newHub(t, &fakeSource{}, Options{MaxStreams: 2, Heartbeat: time.Hour})
	for range 2 {
		open(t, srv.URL+"?type=cpu&window=15m").nextEvent(t)
	}
	resp, err := http.Get(srv.URL + "?type=cpu&window=15m")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&p)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/problem+json" ||
		resp.Header.Get("Retry-After") == "" || !strings.HasSuffix(p.Type, "/too-many-streams") || p.Status != 503 {
		t.Errorf("past the cap: %d %s Retry-After=%q %+v, want a 503 too-many-streams problem with Retry-After",
			resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"), p)
	}
}

func TestClosedStreamFreesItsSlot(t *testing.T) {
	h, _, srv := newHub(t, &fakeSource{}, Options{MaxStreams: 1, Heartbeat: time.Hour})
	s := open(t, srv.URL+"?type=cpu&window=15m")
	s.nextEvent(t)
	s.cancel()
	deadline := time.Now().Add(10 * time.Second)
	for h.Open() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the closed stream still holds its slot")
		}
		time.Sleep(5 * time.Millisecond)
	}
	open(t, srv.URL+"?type=cpu&window=15m").nextEvent(t) // the slot is free again
}

func TestHeartbeat(t *testing.T) {
	_, _, srv := newHub(t, &fakeSource{}, Options{Heartbeat: 10 * time.Millisecond})
	s := open(t, srv.URL+"?type=cpu&window=15m")
	if ct := s.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	for {
		if b := s.next(t); b == ": heartbeat" {
			return
		}
	}
}

func TestCloseEndsStreams(t *testing.T) {
	h, _, srv := newHub(t, &fakeSource{}, Options{Heartbeat: time.Hour})
	s := open(t, srv.URL+"?type=cpu&window=15m")
	s.nextEvent(t)
	h.Close()
	if name, _ := s.nextEvent(t); name != "shutdown" {
		t.Errorf("event %q after Close, want shutdown", name)
	}
	if _, err := io.ReadAll(s.lines); err != nil {
		t.Errorf("the stream did not end cleanly after Close: %v", err)
	}
	resp, err := http.Get(srv.URL + "?type=cpu&window=15m")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a stream after Close: %d, want 503", resp.StatusCode)
	}
}

func TestReadFailuresBecomeProblemEvents(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status float64
	}{
		{"never aggregated", cache.ErrNotFound, 404},
		{"store down", errors.New("connection refused"), 503},
		{"corrupt hash", fmt.Errorf("decode summary: %w", store.ErrCorrupt), 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, srv := newHub(t, &fakeSource{err: tc.err}, Options{Heartbeat: time.Hour})
			name, data := open(t, srv.URL+"?type=cpu&window=15m").nextEvent(t)
			var status float64
			_ = json.Unmarshal(data["status"], &status)
			if name != "problem" || status != tc.status {
				t.Errorf("event %s %v, want a problem with status %v", name, data, tc.status)
			}
			if tc.status == 500 && !strings.Contains(string(data["type"]), "summary-corrupt") {
				t.Errorf("corrupt type: problem %s, want summary-corrupt", data["type"])
			}
		})
	}
}

func TestBadQueries(t *testing.T) {
	_, _, srv := newHub(t, &fakeSource{}, Options{Heartbeat: time.Hour})
	for _, tc := range []struct{ query, field string }{
		{"window=1h", "type"},
		{"type=cpu", "window"},
		{"type=cpu&from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z", "window"},
		{"type=cpu&window=10s", "window"},
		{"type=cpu&window=168h&step=1m", "step"},
		{"type=cpu&window=1000h", "window"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			resp, err := http.Get(srv.URL + "?" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p struct {
				Errors []struct{ Field string } `json:"errors"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&p)
			if resp.StatusCode != http.StatusBadRequest || len(p.Errors) == 0 || p.Errors[0].Field != tc.field {
				t.Errorf("%d %+v, want 400 naming %s", resp.StatusCode, p, tc.field)
			}
		})
	}
}

func TestLastSubscriberStopsTheFeed(t *testing.T) {
	h, _, srv := newHub(t, &fakeSource{}, Options{Heartbeat: time.Hour})
	s := open(t, srv.URL+"?type=cpu&window=15m")
	s.nextEvent(t)
	s.cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		n := len(h.feeds)
		h.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the feed outlived its last subscriber")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStreamOutlivesTheServerWriteTimeout: the server's WriteTimeout is for
// ordinary responses; a stream extends its deadline at every write.
func TestStreamOutlivesTheServerWriteTimeout(t *testing.T) {
	h, err := New(&fakeSource{}, Options{Retention: time.Hour, Heartbeat: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.ticks = (&manualTicks{}).make
	const writeTimeout = 200 * time.Millisecond
	srv := httptest.NewUnstartedServer(h)
	srv.Config.WriteTimeout = writeTimeout
	srv.Start()
	t.Cleanup(func() { h.Close(); srv.Close() })
	s := open(t, srv.URL+"?type=cpu&window=15m")
	start := time.Now()
	for time.Since(start) < 3*writeTimeout {
		s.next(t) // fails when the connection's deadline cut the stream
	}
}
