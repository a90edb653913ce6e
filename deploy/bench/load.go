package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// result is one load step's outcome.
type result struct {
	Name     string
	Conns    int
	Requests int     // answered during the measured window
	Errors   int     // non-2xx answers and transport errors
	Items    int     // metrics per request (1, or the batch size)
	RPS      float64 // answered requests per second
	P50, P99 time.Duration
	// CPU is each watched process's CPU time per answered request, in
	// microseconds ("loadgen" is this process). It says where the two
	// shared cores went, which a throughput figure alone does not.
	CPU map[string]float64
}

// ItemsPerSec is metrics (or requests) per second.
func (r result) ItemsPerSec() float64 { return r.RPS * float64(max(1, r.Items)) }

// cpuString is CPU per request by process, e.g. "loadgen 12.1, server 20.4".
func (r result) cpuString() string {
	names := slices.Sorted(maps.Keys(r.CPU))
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.1f", n, r.CPU[n])
	}
	return strings.Join(parts, ", ")
}

// loadSpec drives a closed-loop load: conns connections, each sending its
// next request as soon as the previous answer arrived. reqs[w] are the
// pre-built raw HTTP/1.1 requests worker w cycles through (pre-built so the
// generator spends its CPU on sending, not on building requests: it shares
// the 2 cores with the server it measures).
type loadSpec struct {
	name     string
	addr     string
	conns    int
	warmup   time.Duration
	duration time.Duration
	items    int
	reqs     func(worker int) [][]byte
	// watch names the processes whose CPU time is reported per request
	// (the server under test, Redis); the load generator is always added.
	watch map[string]int
}

// sample is what one stretch of load measured.
type sample struct {
	requests, errors int
	elapsed          time.Duration
	lats             []time.Duration
	cpu              map[string]time.Duration // CPU time used per watched process
}

func (a *sample) add(b sample) {
	a.requests += b.requests
	a.errors += b.errors
	a.elapsed += b.elapsed
	a.lats = append(a.lats, b.lats...)
	if a.cpu == nil {
		a.cpu = map[string]time.Duration{}
	}
	for k, v := range b.cpu {
		a.cpu[k] += v
	}
}

func (s loadSpec) result(m sample) result {
	r := result{Name: s.name, Conns: s.conns, Requests: m.requests, Errors: m.errors, Items: s.items}
	if m.elapsed > 0 {
		r.RPS = float64(m.requests) / m.elapsed.Seconds()
	}
	if m.requests > 0 {
		r.CPU = map[string]float64{}
		for name, t := range m.cpu {
			r.CPU[name] = t.Seconds() * 1e6 / float64(m.requests)
		}
	}
	slices.Sort(m.lats)
	if len(m.lats) > 0 {
		r.P50 = m.lats[len(m.lats)*50/100]
		r.P99 = m.lats[min(len(m.lats)-1, len(m.lats)*99/100)]
	}
	return r
}

// run measures s for its warmup and duration.
func (s loadSpec) run(ctx context.Context, progress io.Writer) (result, error) {
	m, err := s.measure(ctx, progress, s.warmup, s.duration)
	return s.result(m), err
}

// interleave measures the specs in turns: slices rounds, each giving every
// spec 1/slices of its duration (the first round with the spec's full
// warmup, later ones with a short one). A ratio between two specs then
// compares throughput measured minutes apart no more: this machine's speed
// drifts by 20-30% over tens of seconds (neighbours on the host), which
// moved ratios from back-to-back steps by as much.
func interleave(ctx context.Context, progress io.Writer, rounds int, specs ...loadSpec) ([]result, error) {
	sums := make([]sample, len(specs))
	for round := range rounds {
		for i, s := range specs {
			warmup := s.warmup
			if round > 0 {
				warmup = min(warmup, 250*time.Millisecond)
			}
			m, err := s.measure(ctx, progress, warmup, s.duration/time.Duration(rounds))
			if err != nil {
				return nil, err
			}
			sums[i].add(m)
		}
	}
	out := make([]result, len(specs))
	for i, s := range specs {
		out[i] = s.result(sums[i])
	}
	return out, nil
}

// measure is bounded by warmup+duration and by a hard cap on requests.
func (s loadSpec) measure(ctx context.Context, progress io.Writer, warmup, duration time.Duration) (sample, error) {
	const maxRequests = 5_000_000
	ctx, cancel := context.WithTimeout(ctx, warmup+duration+10*time.Second)
	defer cancel()
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		total     atomic.Int64
		errs      atomic.Int64
		wg        sync.WaitGroup
		mu        sync.Mutex
		lats      []time.Duration
		firstErr  error
	)
	for w := range s.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := make([]time.Duration, 0, 1<<16)
			err := s.worker(ctx, s.reqs(w), &stop, &measuring, &total, &errs, &own)
			mu.Lock()
			lats = append(lats, own...)
			if err != nil && firstErr == nil && !stop.Load() {
				firstErr = err
			}
			mu.Unlock()
		}()
	}
	time.Sleep(warmup)
	measuring.Store(true)
	start := time.Now()
	watch := map[string]int{"loadgen": os.Getpid()}
	maps.Copy(watch, s.watch)
	cpu0 := cpuTimes(watch)
	tick := time.NewTicker(100 * time.Millisecond)
	last, lastAt := int64(0), start
	for done := false; !done; {
		select {
		case now := <-tick.C:
			n := total.Load()
			if now.Sub(lastAt) >= time.Second {
				fmt.Fprintf(progress, "    %s c=%d: %.0f req/s\n", s.name, s.conns, float64(n-last)/now.Sub(lastAt).Seconds())
				last, lastAt = n, now
			}
			if now.Sub(start) >= duration || n >= maxRequests {
				done = true
			}
		case <-ctx.Done():
			done = true
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	cpu1 := cpuTimes(watch)
	measuring.Store(false)
	stop.Store(true)
	n := int(total.Load())
	wg.Wait()
	if firstErr != nil && n == 0 {
		return sample{}, fmt.Errorf("%s: %w", s.name, firstErr)
	}
	m := sample{requests: n, errors: int(errs.Load()), elapsed: elapsed, lats: lats, cpu: map[string]time.Duration{}}
	for name, t1 := range cpu1 {
		if t0, ok := cpu0[name]; ok {
			m.cpu[name] = t1 - t0
		}
	}
	return m, nil
}

func (s loadSpec) worker(ctx context.Context, reqs [][]byte, stop, measuring *atomic.Bool, total, errs *atomic.Int64, lats *[]time.Duration) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	go func() { <-ctx.Done(); conn.Close() }()
	br := bufio.NewReaderSize(conn, 16<<10)
	for i := 0; !stop.Load(); i++ {
		t0 := time.Now()
		if _, err := conn.Write(reqs[i%len(reqs)]); err != nil {
			return err
		}
		status, err := readResponse(br)
		if err != nil {
			return err
		}
		if measuring.Load() {
			*lats = append(*lats, time.Since(t0))
			total.Add(1)
			if status < 200 || status > 299 {
				errs.Add(1)
			}
		}
	}
	return nil
}

// readResponse reads one HTTP/1.1 response with a Content-Length body and
// returns its status.
func readResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 {
		return 0, fmt.Errorf("short status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("status line %q", line)
	}
	length := -1
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if len(h) > 16 && bytes.EqualFold(h[:15], []byte("Content-Length:")) {
			length, err = strconv.Atoi(string(bytes.TrimSpace(h[15:])))
			if err != nil {
				return 0, fmt.Errorf("content-length %q", h)
			}
		}
	}
	if length < 0 {
		return 0, fmt.Errorf("response without Content-Length (status %d)", status)
	}
	if _, err := br.Discard(length); err != nil {
		return 0, err
	}
	return status, nil
}

// cpuTimes reads each process's user+system CPU time from /proc (all its
// threads); a process that is gone is left out.
func cpuTimes(pids map[string]int) map[string]time.Duration {
	out := make(map[string]time.Duration, len(pids))
	for name, pid := range pids {
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and may
		// hold spaces: utime and stime are the 12th and 13th.
		f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		ut, err1 := strconv.ParseInt(f[11], 10, 64)
		st, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out[name] = time.Duration(ut+st) * time.Second / clockTicks
	}
	return out
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// rawRequest builds one HTTP/1.1 request.
func rawRequest(method, host, path string, headers map[string]string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, host)
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	if body != nil {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}
