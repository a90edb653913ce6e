package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		status  int
		wantErr bool
	}{
		{"201 with body", "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello", 201, false},
		{"429 empty body", "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n", 429, false},
		{"no length", "HTTP/1.1 200 OK\r\n\r\n", 0, true},
		{"garbage", "nope\r\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.raw + "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"))
			status, err := readResponse(br)
			if (err != nil) != tt.wantErr || status != tt.status {
				t.Fatalf("status %d err %v", status, err)
			}
			if tt.wantErr {
				return
			}
			// The body was consumed exactly: the next response parses.
			if next, err := readResponse(br); err != nil || next != 204 {
				t.Fatalf("next response: %d %v", next, err)
			}
		})
	}
}

func TestWriteReportReplacesOnlyTheGeneratedBlock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "benchmarks.md")
	if err := os.WriteFile(path, []byte("# Benchmarks\n\nhand-written intro\n\n"+beginMarker+"\nold figures\n"+endMarker+"\n\n## Aggregator\nkept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &report{started: time.Now(), baseline: []result{{Conns: 64, RPS: 1000}}, ingest: []result{{Conns: 64, RPS: 700, P99: 5 * time.Millisecond}},
		ingestOff: []result{{Conns: 64, RPS: 500, P99: 9 * time.Millisecond, CPU: map[string]float64{"server": 40}}},
		summary:   result{Conns: 64, RPS: 900}, batch: result{Conns: 16, RPS: 10, Items: 100}}
	if err := writeReport(options{docs: dir}, r); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	text := string(raw)
	for _, want := range []string{"hand-written intro", "## Aggregator\nkept", "| HTTP limit at 64 | 0.70 |",
		"| 64 | 700 req/s | 5.00 ms | 0.0 | 500 req/s | 9.00 ms | 40.0 | 1.40 |"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "old figures") || strings.Count(text, endMarker) != 1 {
		t.Errorf("generated block not replaced:\n%s", text)
	}
	if _, err := os.Stat(filepath.Join(dir, "benchmarks.svg")); err != nil {
		t.Errorf("no chart: %v", err)
	}
}

// The turns of interleave add up: requests and time are summed, CPU per
// request is the summed CPU over the summed requests, and latencies of all
// turns feed the percentiles.
func TestSamplesMergeAcrossTurns(t *testing.T) {
	s := loadSpec{name: "ingest", conns: 64, items: 1}
	var sum sample
	sum.add(sample{requests: 1000, errors: 1, elapsed: time.Second, lats: []time.Duration{time.Millisecond},
		cpu: map[string]time.Duration{"server": 30 * time.Millisecond}})
	sum.add(sample{requests: 3000, elapsed: time.Second, lats: []time.Duration{3 * time.Millisecond, 2 * time.Millisecond},
		cpu: map[string]time.Duration{"server": 50 * time.Millisecond}})
	r := s.result(sum)
	if r.Requests != 4000 || r.Errors != 1 || r.RPS != 2000 {
		t.Errorf("requests %d errors %d rps %.0f, want 4000 1 2000", r.Requests, r.Errors, r.RPS)
	}
	if got := r.CPU["server"]; got < 19.99 || got > 20.01 {
		t.Errorf("server CPU %.2f µs/request, want 20 (80 ms over 4000)", got)
	}
	if r.P50 != 2*time.Millisecond || r.P99 != 3*time.Millisecond {
		t.Errorf("p50 %v p99 %v over all turns' latencies", r.P50, r.P99)
	}
}

// cpuTimes reads this process's own CPU time, which grows with work.
func TestCPUTimesOfOwnProcess(t *testing.T) {
	pids := map[string]int{"self": os.Getpid(), "gone": 1 << 30}
	before := cpuTimes(pids)
	if _, ok := before["gone"]; ok {
		t.Error("a process that does not exist has a CPU time")
	}
	// Spin until the kernel has charged at least two 10 ms ticks, bounded
	// in time so a busy machine cannot make the test hang.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && cpuTimes(pids)["self"]-before["self"] < 20*time.Millisecond {
		for x := 0; x < 1_000_000; x++ {
			_ = x * x
		}
	}
	if d := cpuTimes(pids)["self"] - before["self"]; d < 20*time.Millisecond {
		t.Errorf("CPU time grew by only %v in 5 s of spinning", d)
	}
}
