package server_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/httpserver"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/server"
)

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func metricAt(ts, value string) string {
	return `{"timestamp":"` + ts + `","value":` + value + `,"type":"cpu_usage"}`
}

// TestHostileBodiesAtTheEdge posts each bound at its edge and one past it
// through the real api and Redis: the refused ones answer the exact status
// with a problem naming the field, header or bound, and store nothing.
func TestHostileBodiesAtTheEdge(t *testing.T) {
	e := start(t, map[string]string{"RATE_LIMIT_ENABLED": "false", "INGEST_MAX_FUTURE": "1h", "INGEST_MAX_BODY_BYTES": "4096"})
	const ts = "2026-02-15T10:00:00Z"
	soon := time.Now().UTC().Add(59 * time.Minute).Format(time.RFC3339)
	late := time.Now().UTC().Add(61 * time.Minute).Format(time.RFC3339)
	bomb := gzipped(t, metricAt(ts, "1")+strings.Repeat(" ", 8<<20))
	tests := []struct {
		name    string
		body    string
		hdr     []string
		status  int
		field   string // the first field error, for 400 validation problems
		message string // part of that field's message, or of the detail
	}{
		{name: "value at the bound", body: metricAt(ts, "1e18"), status: 201},
		{name: "value past the bound", body: metricAt(ts, "1.0000000000000001e18"), status: 400,
			field: "value", message: "must be within ±1e+18 (INGEST_MAX_ABS_VALUE)"},
		{name: "the probe's overflow", body: metricAt(ts, "1.7e308"), status: 400, field: "value", message: "INGEST_MAX_ABS_VALUE"},
		{name: "batch item past the bound", body: "[" + metricAt(ts, "1") + "," + metricAt(ts, "-2e18") + "]", status: 400,
			field: "[1].value", message: "INGEST_MAX_ABS_VALUE"},
		{name: "timestamp inside INGEST_MAX_FUTURE", body: metricAt(soon, "1"), status: 201},
		{name: "timestamp past INGEST_MAX_FUTURE", body: metricAt(late, "1"), status: 400,
			field: "timestamp", message: "1h0m0s ahead of the server's clock (INGEST_MAX_FUTURE)"},
		{name: "year 2200", body: metricAt("2200-01-01T00:00:00Z", "1"), status: 400, field: "timestamp", message: "INGEST_MAX_FUTURE"},
		{name: "lowercase t and z", body: metricAt("2026-02-15t10:00:00z", "1"), status: 201},
		{name: "offset +23:59", body: metricAt("2026-02-15T10:00:00+23:59", "1"), status: 201},
		{name: "offset +24:00", body: metricAt("2026-02-15T10:00:00+24:00", "1"), status: 400, field: "timestamp", message: "offset"},
		{name: "duplicate member", body: `{"timestamp":"2026-02-15T10:00:00Z","value":1,"value":2,"type":"cpu_usage"}`, status: 400,
			field: "value", message: "duplicate"},
		{name: "duplicate member in a batch item", body: "[" + metricAt(ts, "1") + `,{"type":"a","type":"a","timestamp":"2026-02-15T10:00:00Z","value":1}]`,
			status: 400, field: "[1].type", message: "duplicate"},
		{name: "gzip body", body: gzipped(t, metricAt(ts, "1")), hdr: []string{"Content-Encoding", "gzip"}, status: 201},
		{name: "gzip decompressed exactly at the limit", body: gzipped(t, metricAt(ts, "1")+strings.Repeat(" ", 4096-len(metricAt(ts, "1")))),
			hdr: []string{"Content-Encoding", "gzip"}, status: 201},
		{name: "gzip decompressed one past the limit", body: gzipped(t, metricAt(ts, "1")+strings.Repeat(" ", 4097-len(metricAt(ts, "1")))),
			hdr: []string{"Content-Encoding", "gzip"}, status: 413, message: "INGEST_MAX_BODY_BYTES=4096"},
		{name: "gzip bomb", body: bomb, hdr: []string{"Content-Encoding", "gzip"}, status: 413, message: "INGEST_MAX_BODY_BYTES=4096"},
		{name: "corrupt gzip", body: metricAt(ts, "1"), hdr: []string{"Content-Encoding", "gzip"}, status: 400, message: "not valid gzip"},
		{name: "brotli", body: metricAt(ts, "1"), hdr: []string{"Content-Encoding", "br"}, status: 415, message: `"br"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.streamLen(t)
			r := e.post(t, tt.body, tt.hdr...)
			stored := e.streamLen(t) - before
			if r.status != tt.status {
				t.Fatalf("status %d %v, want %d", r.status, r.body, tt.status)
			}
			if tt.status == 201 {
				if stored != 1 && stored != 2 {
					t.Fatalf("stored %d entries", stored)
				}
				return
			}
			if stored != 0 {
				t.Fatalf("a %d stored %d entries", tt.status, stored)
			}
			if r.header.Get("Content-Type") != "application/problem+json" || r.body["status"] != float64(tt.status) {
				t.Fatalf("not a problem: %v %v", r.header, r.body)
			}
			if tt.field == "" {
				if d, _ := r.body["detail"].(string); !strings.Contains(d, tt.message) {
					t.Fatalf("detail %q does not say %q", d, tt.message)
				}
				return
			}
			errs, _ := r.body["errors"].([]any)
			if len(errs) == 0 {
				t.Fatalf("no field errors: %v", r.body)
			}
			fe := errs[0].(map[string]any)
			if fe["field"] != tt.field || !strings.Contains(fe["message"].(string), tt.message) {
				t.Fatalf("error %v, want %s: …%s…", fe, tt.field, tt.message)
			}
		})
	}
}

// TestHeadOnEveryGetRouteAndAllowOn405: HEAD answers what GET answers,
// without a body; a 405 is a problem whose Allow lists the route's methods.
func TestHeadOnEveryGetRouteAndAllowOn405(t *testing.T) {
	e := start(t, map[string]string{"EXTERNAL_FAILURE_RATE": "0"})
	for _, path := range []string{"/livez", "/health", "/metrics", "/api/metrics/summary?type=cpu_usage", "/api/metrics/summary",
		"/api/metrics/series?type=cpu_usage&from=2026-02-15T10:00:00Z&to=2026-02-15T11:00:00Z&step=1m",
		"/api/metrics/types", "/api/external-data", "/api/external-data/circuit"} {
		t.Run("HEAD "+path, func(t *testing.T) {
			get, _ := http.NewRequest("GET", e.api.URL+path, nil)
			head, _ := http.NewRequest("HEAD", e.api.URL+path, nil)
			g, h := do(t, get), do(t, head)
			if h.status != g.status || h.status == http.StatusMethodNotAllowed || h.body != nil {
				t.Fatalf("HEAD %d (body %v), GET %d", h.status, h.body, g.status)
			}
			if h.header.Get("Content-Type") != g.header.Get("Content-Type") {
				t.Errorf("HEAD Content-Type %q, GET %q", h.header.Get("Content-Type"), g.header.Get("Content-Type"))
			}
		})
	}
	for _, tt := range []struct{ method, path, allow string }{
		{"GET", "/api/metrics", "POST"},
		{"HEAD", "/api/metrics", "POST"},
		{"PUT", "/api/metrics", "POST"},
		{"POST", "/api/metrics/summary", "GET, HEAD"},
		{"DELETE", "/livez", "GET, HEAD"},
		{"PATCH", "/api/external-data/circuit", "GET, HEAD"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.api.URL+tt.path, nil)
			r := do(t, req)
			if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != tt.allow {
				t.Fatalf("%d Allow %q, want 405 Allow %q", r.status, r.header.Get("Allow"), tt.allow)
			}
			if tt.method != "HEAD" && (r.header.Get("Content-Type") != "application/problem+json" || r.body["status"] != float64(405)) {
				t.Fatalf("405 is not a problem: %v %v", r.header, r.body)
			}
		})
	}
}

// serveEdge serves the api exactly as main does, through pkg/httpserver,
// so its header limit and timeouts apply, and returns its address and a
// count of the stream's entries.
func serveEdge(t *testing.T, hcfg httpserver.Config) (addr string, streamLen func() int64) {
	t.Helper()
	srv := redistest.Start(t)
	cfg, err := config.Load(map[string]string{"REDIS_URL": srv.URL(), "RATE_LIMIT_ENABLED": "false"})
	if err != nil {
		t.Fatal(err)
	}
	h := buildAPI(t, server.Deps{Config: cfg})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpserver.Serve(ctx, httpserver.New(h, hcfg), ln, hcfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		h.Close()
	})
	own := srv.Client(t)
	stream := store.NewKeys(cfg.StreamKey).Stream(0)
	return ln.Addr().String(), func() int64 {
		n, err := own.XLen(context.Background(), stream).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
}

// rawExchange writes request bytes by hand and reads every response the
// server sends before it closes the connection (or stops answering).
func rawExchange(t *testing.T, addr, request string) []*http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	// A bound on a test that would otherwise hang, not a timing assertion.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	var out []*http.Response
	for len(out) < 2 { // a second answer already shows the failure
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
		if resp.Close {
			if _, err := br.ReadByte(); err == nil {
				t.Error("bytes after a Connection: close answer")
			}
			break
		}
	}
	return out
}

func TestHeaderLimitAtTheEdge(t *testing.T) {
	addr, streamLen := serveEdge(t, httpserver.Config{})
	for _, tt := range []struct {
		name   string
		size   int
		status int
	}{
		{"header block just under 16 KiB", 16<<10 - 1024, http.StatusCreated},
		{"32 KiB header", 32 << 10, http.StatusRequestHeaderFieldsTooLarge},
		{"1 MiB header of the probe", 1 << 20, http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := streamLen()
			req, _ := http.NewRequest("POST", "http://"+addr+"/api/metrics", strings.NewReader(seed))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Padding", strings.Repeat("p", tt.size))
			r := do(t, req)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d", r.status, tt.status)
			}
			if want := map[bool]int64{true: 1, false: 0}[tt.status == 201]; streamLen()-before != want {
				t.Fatalf("stored %d, want %d", streamLen()-before, want)
			}
		})
	}
}

// TestSlowBodyIs408: a body that stops arriving before the server's
// ReadTimeout gets a 408 problem that quotes no socket address or Go error,
// and nothing is stored.
func TestSlowBodyIs408(t *testing.T) {
	addr, streamLen := serveEdge(t, httpserver.Config{ReadTimeout: 300 * time.Millisecond})
	resps := rawExchange(t, addr, "POST /api/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Content-Length: 70\r\n\r\n"+`{"timestamp":"2026-02-15T10:00:00Z",`)
	if len(resps) != 1 {
		t.Fatalf("%d responses, want one", len(resps))
	}
	resp := resps[0]
	body, _ := io.ReadAll(resp.Body)
	var p map[string]any
	if resp.StatusCode != http.StatusRequestTimeout || resp.Header.Get("Content-Type") != "application/problem+json" ||
		json.Unmarshal(body, &p) != nil || p["status"] != float64(408) {
		t.Fatalf("%d %v %s, want a 408 problem", resp.StatusCode, resp.Header, body)
	}
	host, _, _ := net.SplitHostPort(addr)
	for _, leak := range []string{host, "i/o timeout", "tcp", "deadline"} {
		if bytes.Contains(body, []byte(leak)) {
			t.Errorf("408 body quotes %q: %s", leak, body)
		}
	}
	if !resp.Close {
		t.Error("the connection stays open after the 408")
	}
	if n := streamLen(); n != 0 {
		t.Fatalf("stored %d entries", n)
	}
}

// TestChunkedRequestClosesTheConnection: a POST with both Content-Length
// and Transfer-Encoding (the smuggling shape) is answered once and the
// connection closed, so the request hidden behind it is never served.
func TestChunkedRequestClosesTheConnection(t *testing.T) {
	addr, streamLen := serveEdge(t, httpserver.Config{})
	second := "POST /api/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(seed)) + "\r\n\r\n" + seed
	chunk := strconv.FormatInt(int64(len(seed)), 16) + "\r\n" + seed + "\r\n0\r\n\r\n"
	first := "POST /api/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n" +
		"Transfer-Encoding: chunked\r\n\r\n" + chunk
	resps := rawExchange(t, addr, first+second)
	if len(resps) != 1 || resps[0].StatusCode != http.StatusCreated || !resps[0].Close {
		var got []string
		for _, r := range resps {
			got = append(got, r.Status+" close="+map[bool]string{true: "yes", false: "no"}[r.Close])
		}
		t.Fatalf("responses %v, want one 201 with Connection: close", got)
	}
	if n := streamLen(); n != 1 {
		t.Fatalf("stored %d entries, want only the first request's", n)
	}
}
