package logbuf_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/logbuf"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
	n  int // writes
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return s.b.Write(p)
}

func (s *syncBuf) snapshot() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String(), s.n
}

func TestLinesArriveWholeAndBatched(t *testing.T) {
	out := &syncBuf{}
	w := logbuf.New(out, 20*time.Millisecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				_, _ = w.Write([]byte(strings.Repeat(string(rune('a'+g)), 40) + "\n"))
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	text, writes := out.snapshot()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 4000 {
		t.Fatalf("%d lines, want 4000", len(lines))
	}
	for _, l := range lines {
		if len(l) != 40 || strings.Count(l, l[:1]) != 40 {
			t.Fatalf("torn line %q", l)
		}
	}
	if writes >= 4000/10 {
		t.Errorf("%d writes for 4000 lines: not batched", writes)
	}
}

func TestFlushesWithoutClose(t *testing.T) {
	out := &syncBuf{}
	w := logbuf.New(out, 10*time.Millisecond)
	defer w.Close()
	_, _ = w.Write([]byte("hello\n"))
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if text, _ := out.snapshot(); text == "hello\n" {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("line not flushed by the ticker")
}
