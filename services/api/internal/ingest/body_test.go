package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/metric"
	"github.com/resilientanalytics/ra/pkg/problem"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/internal/ingest"
	"github.com/resilientanalytics/ra/services/api/internal/ratelimit"
)

func mustHandler(tb testing.TB, store ingest.Appender, policy ratelimit.Policy, l ingest.Limits, rec ingest.Recorder, log *slog.Logger) *ingest.Handler {
	tb.Helper()
	h, err := ingest.NewHandler(store, policy, l, rec, log)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// recordingStore accepts everything and remembers what it was given.
type recordingStore struct{ calls int }

func (s *recordingStore) Append(_ context.Context, _ string, _ store.Limit, ms []metric.Metric, _ store.Idempotency) (store.AppendResult, error) {
	s.calls++
	ids := make([]string, len(ms))
	for i := range ids {
		ids[i] = "1-0"
	}
	return store.AppendResult{Allowed: true, Count: -1, IDs: ids}, nil
}

const (
	testMaxBody = 4096
	oneMetric   = `{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"a"}`
)

type answer struct {
	status int
	header http.Header
	body   problem.Problem
	raw    string
}

func serve(t *testing.T, store ingest.Appender, req *http.Request) answer {
	t.Helper()
	h := mustHandler(t, store, ratelimit.Policy{}, ingest.Limits{MaxBodyBytes: testMaxBody, MaxBatch: 10}, &counter{}, slog.New(slog.DiscardHandler))
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	a := answer{status: w.Code, header: w.Header(), raw: w.Body.String()}
	_ = json.Unmarshal(w.Body.Bytes(), &a.body)
	return a
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// padded is oneMetric followed by spaces up to n bytes: still one valid
// metric, of an exact size.
func padded(n int) []byte {
	return append([]byte(oneMetric), bytes.Repeat([]byte(" "), n-len(oneMetric))...)
}

func TestContentEncoding(t *testing.T) {
	// Random bytes do not compress: gzip makes them a little larger, so
	// this body is over the limit as sent and under it decompressed.
	random := make([]byte, testMaxBody-10)
	_, _ = rand.Read(random)
	tests := []struct {
		name     string
		encoding []string
		body     func(t *testing.T) []byte
		noLength bool // send without Content-Length (chunked)
		status   int
		detail   string // a part of the problem's detail
	}{
		{name: "gzip", encoding: []string{"gzip"}, body: func(t *testing.T) []byte { return gz(t, []byte(oneMetric)) }, status: 201},
		{name: "x-gzip, any case", encoding: []string{"X-GZIP"}, body: func(t *testing.T) []byte { return gz(t, []byte(oneMetric)) }, status: 201},
		{name: "identity", encoding: []string{"identity"}, body: func(*testing.T) []byte { return []byte(oneMetric) }, status: 201},
		{name: "gzip then identity", encoding: []string{"gzip, identity"}, body: func(t *testing.T) []byte { return gz(t, []byte(oneMetric)) }, status: 201},
		{name: "decompressed exactly at the limit", encoding: []string{"gzip"}, body: func(t *testing.T) []byte { return gz(t, padded(testMaxBody)) }, status: 201},
		{name: "decompressed one byte past the limit", encoding: []string{"gzip"}, body: func(t *testing.T) []byte { return gz(t, padded(testMaxBody+1)) },
			status: 413, detail: "INGEST_MAX_BODY_BYTES=4096"},
		{name: "gzip bomb", encoding: []string{"gzip"}, body: func(t *testing.T) []byte { return gz(t, padded(64<<20)) },
			status: 413, detail: "INGEST_MAX_BODY_BYTES=4096"},
		{name: "compressed bytes past the limit", encoding: []string{"gzip"}, body: func(t *testing.T) []byte { return gz(t, random) },
			status: 413, detail: "INGEST_MAX_BODY_BYTES=4096"},
		{name: "compressed bytes past the limit, chunked", encoding: []string{"gzip"}, body: func(t *testing.T) []byte { return gz(t, random) },
			noLength: true, status: 413, detail: "INGEST_MAX_BODY_BYTES=4096"},
		{name: "plain body exactly at the limit", body: func(*testing.T) []byte { return padded(testMaxBody) }, status: 201},
		{name: "plain body one byte past the limit, chunked", body: func(*testing.T) []byte { return padded(testMaxBody + 1) },
			noLength: true, status: 413, detail: "INGEST_MAX_BODY_BYTES=4096"},
		{name: "not gzip at all", encoding: []string{"gzip"}, body: func(*testing.T) []byte { return []byte(oneMetric) },
			status: 400, detail: "not valid gzip"},
		{name: "gzip cut short", encoding: []string{"gzip"}, body: func(t *testing.T) []byte { b := gz(t, []byte(oneMetric)); return b[:len(b)-6] },
			status: 400, detail: "not valid gzip"},
		{name: "gzip with a bad checksum", encoding: []string{"gzip"}, body: func(t *testing.T) []byte { b := gz(t, []byte(oneMetric)); b[len(b)-8] ^= 1; return b },
			status: 400, detail: "not valid gzip"},
		{name: "empty gzip body", encoding: []string{"gzip"}, body: func(*testing.T) []byte { return nil }, status: 400, detail: "not valid gzip"},
		{name: "gzip of invalid JSON is a JSON error", encoding: []string{"gzip"}, body: func(t *testing.T) []byte { return gz(t, []byte("{")) },
			status: 400, detail: "JSON"},
		{name: "br", encoding: []string{"br"}, body: func(*testing.T) []byte { return []byte(oneMetric) }, status: 415, detail: `"br"`},
		{name: "deflate", encoding: []string{"deflate"}, body: func(*testing.T) []byte { return []byte(oneMetric) }, status: 415, detail: `"deflate"`},
		{name: "gzip twice", encoding: []string{"gzip", "gzip"}, body: func(t *testing.T) []byte { return gz(t, gz(t, []byte(oneMetric))) },
			status: 415, detail: `"gzip, gzip"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &recordingStore{}
			body := tt.body(t)
			var rd io.Reader = bytes.NewReader(body)
			if tt.noLength {
				rd = io.MultiReader(rd) // hides the length, as a chunked body has none
			}
			req := httptest.NewRequest("POST", "/api/metrics", rd)
			if tt.noLength {
				req.ContentLength = -1
			}
			req.Header["Content-Encoding"] = tt.encoding
			a := serve(t, store, req)
			if a.status != tt.status || !strings.Contains(a.body.Detail, tt.detail) {
				t.Fatalf("%d %q, want %d with %q", a.status, a.body.Detail, tt.status, tt.detail)
			}
			if tt.status == 201 {
				if store.calls != 1 {
					t.Fatalf("stored %d times", store.calls)
				}
				return
			}
			if store.calls != 0 {
				t.Fatal("a refused request reached the store")
			}
			if a.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("Content-Type %q", a.header.Get("Content-Type"))
			}
			if tt.status == 415 && a.header.Get("Accept-Encoding") != "gzip" {
				t.Errorf("415 without Accept-Encoding: gzip: %v", a.header)
			}
		})
	}
}

// failingBody fails the way a connection does: with net.OpError text that
// names both socket addresses.
type failingBody struct{ err error }

func (f failingBody) Read([]byte) (int, error) { return 0, f.err }

func opError(err error) error {
	return &net.OpError{Op: "read", Net: "tcp",
		Source: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 8000},
		Addr:   &net.TCPAddr{IP: net.IPv4(10, 9, 8, 7), Port: 51234}, Err: err}
}

func TestBodyReadFailuresQuoteNoInternals(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		encoding string
		status   int
	}{
		{"deadline exceeded", opError(os.ErrDeadlineExceeded), "", 408},
		{"deadline exceeded under gzip", opError(os.ErrDeadlineExceeded), "gzip", 408},
		{"connection reset", opError(errors.New("connection reset by peer")), "", 400},
		{"connection reset under gzip", opError(errors.New("connection reset by peer")), "gzip", 400},
		{"cut short", io.ErrUnexpectedEOF, "gzip", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &recordingStore{}
			req := httptest.NewRequest("POST", "/api/metrics", failingBody{tt.err})
			req.ContentLength = -1
			if tt.encoding != "" {
				req.Header.Set("Content-Encoding", tt.encoding)
			}
			a := serve(t, store, req)
			if a.status != tt.status || a.body.Status != tt.status {
				t.Fatalf("%d %s, want %d", a.status, a.raw, tt.status)
			}
			for _, leak := range []string{"10.1.2.3", "10.9.8.7", "tcp", "i/o timeout", "reset by peer", "unexpected EOF", "gzip"} {
				if strings.Contains(a.raw, leak) {
					t.Errorf("body quotes %q: %s", leak, a.raw)
				}
			}
			if tt.status == 408 && a.header.Get("Connection") != "close" {
				t.Errorf("408 keeps the connection: %v", a.header)
			}
			if store.calls != 0 {
				t.Fatal("a failed read reached the store")
			}
		})
	}
}

func TestNewHandlerRejectsBadLimits(t *testing.T) {
	_, err := ingest.NewHandler(&recordingStore{}, ratelimit.Policy{}, ingest.Limits{MaxBodyBytes: 1024, MaxAbsValue: -1}, &counter{}, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("accepted a negative MaxAbsValue")
	}
}

// TestDecodeLimitsReachTheDecoder: the handler passes its bounds and clock
// on, and a value or timestamp past them is a 400 naming the bound.
func TestDecodeLimitsReachTheDecoder(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	store := &recordingStore{}
	h := mustHandler(t, store, ratelimit.Policy{}, ingest.Limits{MaxBodyBytes: 1024, MaxBatch: 10, MaxAbsValue: 10,
		MaxFuture: time.Minute, Now: func() time.Time { return now }}, &counter{}, slog.New(slog.DiscardHandler))
	for body, want := range map[string]string{
		`{"timestamp":"2026-12-01T12:01:00Z","value":10,"type":"a"}`:    "",
		`{"timestamp":"2026-12-01T12:01:01Z","value":1,"type":"a"}`:     "INGEST_MAX_FUTURE",
		`{"timestamp":"2026-12-01T12:00:00Z","value":-10.5,"type":"a"}`: "INGEST_MAX_ABS_VALUE",
	} {
		req := httptest.NewRequest("POST", "/api/metrics", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if want == "" {
			if w.Code != 201 {
				t.Errorf("%s: %d %s", body, w.Code, w.Body)
			}
			continue
		}
		if w.Code != 400 || !strings.Contains(w.Body.String(), want) {
			t.Errorf("%s: %d %s, want 400 naming %s", body, w.Code, w.Body, want)
		}
	}
	if store.calls != 1 {
		t.Errorf("store called %d times, want once (the valid body)", store.calls)
	}
}
