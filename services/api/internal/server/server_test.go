package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/server"
)

const seed = `{"timestamp":"2026-02-15T10:00:00","value":75,"type":"cpu_usage"}`

type env struct {
	srv  *redistest.Server
	rdb  *redis.Client // the test's own view of Redis
	api  *httptest.Server
	keys store.Keys
}

// serveAPI builds the api from environ, exactly as main does, and serves it
// on a loopback test server until the test ends.
func serveAPI(t *testing.T, environ map[string]string) (*httptest.Server, config.Config) {
	t.Helper()
	cfg, err := config.Load(environ)
	if err != nil {
		t.Fatal(err)
	}
	h := buildAPI(t, server.Deps{Config: cfg})
	api := httptest.NewServer(h)
	t.Cleanup(h.Close) // runs after api.Close: the server drains first
	t.Cleanup(api.Close)
	return api, cfg
}

// buildAPI builds the api as main does from d.Config (a client from
// REDIS_URL, the store, server.New), with hooks on the client; d.Log
// defaults to a discarding logger. The client closes when the test ends.
func buildAPI(t *testing.T, d server.Deps, hooks ...redis.Hook) *server.API {
	t.Helper()
	rdb, err := redisclient.New(d.Config.Redis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	for _, h := range hooks {
		rdb.AddHook(h)
	}
	if d.Store, err = store.New(rdb, d.Config.StreamKey, d.Config.Partitions, store.WithMaxTypes(d.Config.Ingest.MaxTypes)); err != nil {
		t.Fatal(err)
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	h, err := server.New(d)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func start(t *testing.T, environ map[string]string) *env {
	t.Helper()
	srv := redistest.Start(t)
	if environ == nil {
		environ = map[string]string{}
	}
	environ["REDIS_URL"] = srv.URL()
	api, cfg := serveAPI(t, environ)
	return &env{srv: srv, rdb: srv.Client(t), api: api, keys: store.NewKeys(cfg.StreamKey)}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
}

func (e *env) post(t *testing.T, body string, hdr ...string) reply {
	t.Helper()
	req, _ := http.NewRequest("POST", e.api.URL+"/api/metrics", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

func (e *env) streamLen(t *testing.T) int64 {
	t.Helper()
	n, err := e.rdb.XLen(context.Background(), e.keys.Stream(0)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCreatedLeavesExactlyOneEntryWithTheFields(t *testing.T) {
	e := start(t, nil)
	r := e.post(t, seed, "X-Request-ID", "req-123")
	if r.status != http.StatusCreated {
		t.Fatalf("status %d body %v", r.status, r.body)
	}
	if r.header.Get("X-Request-ID") != "req-123" {
		t.Errorf("X-Request-ID not echoed: %q", r.header.Get("X-Request-ID"))
	}
	msgs, err := e.rdb.XRange(context.Background(), e.keys.Stream(0), "-", "+").Result()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("stream has %d entries (%v), want 1", len(msgs), err)
	}
	if r.body["id"] != msgs[0].ID || r.body["type"] != "cpu_usage" {
		t.Errorf("body %v does not name entry %s", r.body, msgs[0].ID)
	}
	want := map[string]any{"type": "cpu_usage", "value": "75", "ts": strconv.FormatInt(time.Date(2026, 2, 15, 10, 0, 0, 0, time.UTC).UnixMicro(), 10)}
	for k, v := range want {
		if msgs[0].Values[k] != v {
			t.Errorf("field %s = %v, want %v", k, msgs[0].Values[k], v)
		}
	}
	if r.header.Get("RateLimit-Policy") != `"default";q=5;w=60` || !strings.HasPrefix(r.header.Get("RateLimit"), `"default";r=4;t=`) {
		t.Errorf("rate-limit headers: %q / %q", r.header.Get("RateLimit-Policy"), r.header.Get("RateLimit"))
	}
}

func TestBatch(t *testing.T) {
	e := start(t, nil)
	good := `{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"a"}`
	r := e.post(t, "["+good+","+good+","+good+"]")
	if r.status != http.StatusCreated || r.body["accepted"] != float64(3) || len(r.body["ids"].([]any)) != 3 {
		t.Fatalf("batch: %d %v", r.status, r.body)
	}
	if n := e.streamLen(t); n != 3 {
		t.Fatalf("stream length %d, want 3", n)
	}
	r = e.post(t, "["+good+`,{"timestamp":"2026-02-15T10:00:00Z","value":"1","type":"a"},`+good+"]")
	if r.status != http.StatusBadRequest {
		t.Fatalf("bad batch: %d", r.status)
	}
	errs := r.body["errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["field"] != "[1].value" {
		t.Fatalf("errors = %v", errs)
	}
	if n := e.streamLen(t); n != 3 {
		t.Fatalf("a rejected batch wrote: stream length %d, want 3", n)
	}
}

func TestBadRequestsAreProblemsAndUseNoQuota(t *testing.T) {
	e := start(t, map[string]string{"INGEST_MAX_BATCH": "2", "INGEST_MAX_BODY_BYTES": "2048"})
	good := `{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"a"}`
	tests := []struct {
		name, body, ctype, detail string
		status                    int
	}{
		{"string value", `{"timestamp":"2026-02-15T10:00:00","value":"75","type":"cpu_usage"}`, "application/json", "", 400},
		{"malformed", `{"timestamp":`, "application/json", "", 400},
		{"empty body", ``, "application/json", "", 400},
		{"null", `null`, "application/json", "", 400},
		{"empty batch", `[]`, "application/json", "", 400},
		{"unknown field", `{"timestamp":"2026-02-15T10:00:00","vlaue":1,"type":"cpu_usage"}`, "application/json", "", 400},
		{"batch over limit", "[" + good + "," + good + "," + good + "]", "application/json", "INGEST_MAX_BATCH=2", 413},
		{"body over limit", `{"timestamp":"2026-02-15T10:00:00","value":1,"type":"` + strings.Repeat("a", 3000) + `"}`, "application/json", "INGEST_MAX_BODY_BYTES=2048", 413},
		{"text/plain", good, "text/plain", "application/json", 415},
		{"no content type", good, "", "application/json", 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.api.URL+"/api/metrics", strings.NewReader(tt.body))
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			r := do(t, req)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (%v)", r.status, tt.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			if r.body["status"] != float64(tt.status) || r.body["title"] == "" || r.body["type"] == "" || r.body["detail"] == "" {
				t.Errorf("not a full problem: %v", r.body)
			}
			if tt.detail != "" && !strings.Contains(r.body["detail"].(string), tt.detail) {
				t.Errorf("detail %q does not mention %q", r.body["detail"], tt.detail)
			}
		})
	}
	// None of the above reached Redis: the quota is untouched.
	keys, _ := e.rdb.Keys(context.Background(), "*").Result()
	if len(keys) != 0 {
		t.Fatalf("invalid requests touched Redis: %v", keys)
	}
	for i := 0; i < 5; i++ {
		if r := e.post(t, good); r.status != http.StatusCreated {
			t.Fatalf("request %d after invalid ones: %d", i+1, r.status)
		}
	}
}

func TestSixthRequestIsRateLimited(t *testing.T) {
	e := start(t, nil)
	for i := 1; i <= 5; i++ {
		if r := e.post(t, seed); r.status != http.StatusCreated {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	r := e.post(t, seed)
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("6th request: %d", r.status)
	}
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q, want 1..60", r.header.Get("Retry-After"))
	}
	if r.body["type"] != "https://iana.org/assignments/http-problem-types#quota-exceeded" {
		t.Errorf("type %v", r.body["type"])
	}
	if pol, _ := r.body["violated-policies"].([]any); len(pol) != 1 || pol[0] != "default" {
		t.Errorf("violated-policies %v", r.body["violated-policies"])
	}
	if !strings.HasPrefix(r.header.Get("RateLimit"), `"default";r=0;t=`) {
		t.Errorf("RateLimit %q", r.header.Get("RateLimit"))
	}
	if n := e.streamLen(t); n != 5 {
		t.Fatalf("stream has %d entries, want 5: a 429 must write nothing", n)
	}
}

func TestWindowResetsAndKeyAlwaysHasTTL(t *testing.T) {
	e := start(t, map[string]string{"RATE_LIMIT_MAX": "2", "RATE_LIMIT_WINDOW": "1"})
	ctx := context.Background()
	key := e.keys.RateLimit(0, "127.0.0.1")
	for i := 0; i < 3; i++ {
		e.post(t, seed)
		if ttl, _ := e.rdb.PTTL(ctx, key).Result(); ttl <= 0 {
			t.Fatalf("after request %d the key has PTTL %s", i+1, ttl)
		}
	}
	if r := e.post(t, seed); r.status != http.StatusTooManyRequests {
		t.Fatalf("over quota: %d", r.status)
	}
	// A counter that lost its TTL (e.g. PERSIST by an operator) is re-armed.
	e.rdb.Persist(ctx, key)
	e.post(t, seed)
	if ttl, _ := e.rdb.PTTL(ctx, key).Result(); ttl <= 0 {
		t.Fatalf("key left without TTL: %s", ttl)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r := e.post(t, seed); r.status == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("window never reset")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestClientKeyAndForwardedFor(t *testing.T) {
	ctx := context.Background()
	t.Run("untrusted peer cannot spoof", func(t *testing.T) {
		e := start(t, map[string]string{"RATE_LIMIT_MAX": "2"})
		for i, xff := range []string{"1.1.1.1", "2.2.2.2", "3.3.3.3"} {
			r := e.post(t, seed, "X-Forwarded-For", xff)
			if i < 2 && r.status != 201 || i == 2 && r.status != 429 {
				t.Fatalf("request %d with XFF %s: %d", i+1, xff, r.status)
			}
		}
		if n, _ := e.rdb.Exists(ctx, e.keys.RateLimit(0, "127.0.0.1")).Result(); n != 1 {
			t.Fatal("the peer address is not the key")
		}
	})
	t.Run("trusted proxy names the client", func(t *testing.T) {
		e := start(t, map[string]string{"RATE_LIMIT_MAX": "1", "TRUSTED_PROXIES": "127.0.0.0/8"})
		for _, xff := range []string{"198.51.100.1", "198.51.100.2"} {
			if r := e.post(t, seed, "X-Forwarded-For", xff); r.status != 201 {
				t.Fatalf("client %s: %d", xff, r.status)
			}
		}
		if r := e.post(t, seed, "X-Forwarded-For", "198.51.100.1"); r.status != 429 {
			t.Fatalf("second request of 198.51.100.1: %d", r.status)
		}
		if n, _ := e.rdb.Exists(ctx, e.keys.RateLimit(0, "198.51.100.1"), e.keys.RateLimit(0, "198.51.100.2")).Result(); n != 2 {
			t.Fatal("forwarded clients not keyed separately")
		}
	})
	t.Run("limiter off", func(t *testing.T) {
		e := start(t, map[string]string{"RATE_LIMIT_ENABLED": "false", "RATE_LIMIT_MAX": "1"})
		for i := 0; i < 3; i++ {
			r := e.post(t, seed)
			if r.status != 201 || r.header.Get("RateLimit") != "" {
				t.Fatalf("request %d: %d %v", i+1, r.status, r.header)
			}
		}
	})
}

func TestRedisDownIs503AndRecovers(t *testing.T) {
	e := start(t, nil)
	e.srv.RequireReal(t)
	if r := e.post(t, seed); r.status != 201 {
		t.Fatalf("before: %d", r.status)
	}
	e.srv.Kill(t)
	began := time.Now()
	r := e.post(t, seed)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("with Redis down: %d %v", r.status, r.header)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("503 took %s; a client must not hang", took)
	}
	h := do(t, mustReq(t, "GET", e.api.URL+"/health"))
	if h.status != 503 || h.body["checks"].(map[string]any)["redis"] != "unreachable" {
		t.Fatalf("/health with Redis down: %d %v", h.status, h.body)
	}
	if l := do(t, mustReq(t, "GET", e.api.URL+"/livez")); l.status != 200 {
		t.Fatalf("/livez: %d", l.status)
	}
	e.srv.Restart(t)
	if r := e.post(t, seed); r.status != 201 {
		t.Fatalf("after restart: %d %v", r.status, r.body)
	}
	if h := do(t, mustReq(t, "GET", e.api.URL+"/health")); h.status != 200 || h.body["status"] != "ok" {
		t.Fatalf("/health after restart: %d %v", h.status, h.body)
	}
}

func TestUnknownRouteIsProblem(t *testing.T) {
	e := start(t, nil)
	r := do(t, mustReq(t, "GET", e.api.URL+"/nope"))
	if r.status != 404 || r.header.Get("Content-Type") != "application/problem+json" || r.header.Get("X-Request-ID") == "" {
		t.Fatalf("%d %v", r.status, r.header)
	}
	r = do(t, mustReq(t, "GET", e.api.URL+"/api/metrics"))
	if r.status != 405 || r.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("GET /api/metrics: %d", r.status)
	}
}

func mustReq(t *testing.T, method, url string) *http.Request {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestMetricsCountRejectionsAndRequests(t *testing.T) {
	e := start(t, map[string]string{"RATE_LIMIT_MAX": "1"})
	e.post(t, seed)
	e.post(t, seed)
	resp, err := http.Get(e.api.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	text := string(raw)
	for _, want := range []string{
		`ra_api_rate_limited_total{key=""} 1`,
		`ra_api_http_requests_total{code="201",route="/api/metrics"} 1`,
		`ra_api_http_requests_total{code="429",route="/api/metrics"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q in:\n%s", want, grepLines(text, "ra_api_"))
		}
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestSummaryRouteServesTheAggregatorsHash(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	e.rdb.HSet(ctx, e.keys.Summary(0, "cpu_usage"), "count", 2, "sum", "150", "min", "70", "max", "80",
		"first_ts", time.Date(2026, 2, 15, 10, 0, 0, 0, time.UTC).UnixMicro(), "last_ts", time.Date(2026, 2, 15, 11, 0, 0, 0, time.UTC).UnixMicro())
	get := func() reply { return do(t, mustReq(t, "GET", e.api.URL+"/api/metrics/summary?type=cpu_usage")) }
	r := get()
	if r.status != 200 || r.header.Get("X-Cache") != "MISS" || r.body["average_value"] != float64(75) || r.body["count"] != float64(2) ||
		r.body["first_timestamp"] != "2026-02-15T10:00:00Z" {
		t.Fatalf("first GET: %d %v %v", r.status, r.header, r.body)
	}
	if r = get(); r.header.Get("X-Cache") != "HIT" {
		t.Fatalf("second GET: %v", r.header)
	}
	if r = do(t, mustReq(t, "GET", e.api.URL+"/api/metrics/summary?type=never_seen")); r.status != 404 {
		t.Fatalf("unknown type: %d", r.status)
	}
	if r = do(t, mustReq(t, "GET", e.api.URL+"/api/metrics/summary")); r.status != 400 {
		t.Fatalf("missing type: %d", r.status)
	}
}
