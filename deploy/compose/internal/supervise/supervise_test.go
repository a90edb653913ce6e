package supervise

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe to read while children write to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLineWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{name: "whole lines", writes: []string{"a\nb\n"}, want: "x | a\nx | b\n"},
		{name: "split line", writes: []string{"hel", "lo\nwor", "ld\n"}, want: "x | hello\nx | world\n"},
		{name: "trailing partial flushed", writes: []string{"a\nrest"}, want: "x | a\nx | rest\n"},
		{name: "crlf", writes: []string{"a\r\n"}, want: "x | a\n"},
		{name: "empty line kept", writes: []string{"\n"}, want: "x | \n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewOutput(&buf).Prefixed("x | ")
			for _, s := range tt.writes {
				if _, err := w.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			w.Flush()
			if buf.String() != tt.want {
				t.Errorf("got %q, want %q", buf.String(), tt.want)
			}
		})
	}
}

func TestLinesFromTwoWritersDoNotInterleave(t *testing.T) {
	var buf syncBuffer
	out := NewOutput(&buf)
	var wg sync.WaitGroup
	for _, p := range []string{"a | ", "b | "} {
		w := out.Prefixed(p)
		wg.Go(func() {
			for range 200 {
				_, _ = w.Write([]byte("0123456789"))
				_, _ = w.Write([]byte("0123456789\n"))
			}
		})
	}
	wg.Wait()
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		if line != "a | 01234567890123456789" && line != "b | 01234567890123456789" {
			t.Fatalf("interleaved line %q", line)
		}
	}
}

func TestChildStopAndExitCodes(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	tests := []struct {
		name     string
		script   string
		wantCode int
		wantErr  error // checked with errors.Is when set
		wantOut  string
	}{
		{name: "clean exit on SIGTERM", script: `trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.05; done`, wantCode: 0, wantOut: "svc | up\nsvc | bye\n"},
		{name: "non-zero exit is an error", script: `trap 'exit 3' TERM; echo up; while :; do sleep 0.05; done`, wantCode: 3},
		{name: "ignores SIGTERM: killed", script: `trap '' TERM; echo up; while :; do sleep 0.05; done`, wantCode: -1, wantErr: ErrKilled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf syncBuffer
			c, err := Start(Options{Name: "svc", Path: sh, Args: []string{"-c", tt.script}, Out: NewOutput(&buf)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Kill)
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(buf.String(), "svc | up") {
				if time.Now().After(deadline) {
					t.Fatalf("child never said up; output %q", buf.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			err = c.Stop(500 * time.Millisecond)
			if got := c.ExitCode(); got != tt.wantCode {
				t.Errorf("exit code %d, want %d (err %v)", got, tt.wantCode, err)
			}
			if (err == nil) != (tt.wantCode == 0) {
				t.Errorf("Stop err = %v, want error iff exit code != 0", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Stop err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantOut != "" && buf.String() != tt.wantOut {
				t.Errorf("output %q, want %q", buf.String(), tt.wantOut)
			}
		})
	}
}
