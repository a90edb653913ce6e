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
		summary: result{Conns: 64, RPS: 900}, batch: result{Conns: 16, RPS: 10, Items: 100}}
	if err := writeReport(options{docs: dir}, r); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	text := string(raw)
	for _, want := range []string{"hand-written intro", "## Aggregator\nkept", "| HTTP limit at 64 | 0.70 |"} {
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
