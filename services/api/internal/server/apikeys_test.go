package server_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/apikey"
	"github.com/resilientanalytics/ra/services/api/internal/server"
)

// testKey is a generated key and its configuration entry.
type testKey struct {
	key   string // the secret a client sends
	entry apikey.Entry
}

func newKey(t *testing.T, name string) testKey {
	t.Helper()
	k, e, err := apikey.Generate(name)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{key: k, entry: e}
}

// line is the entry with an optional ";q=..;w=.." suffix.
func (k testKey) line(quota string) string { return k.entry.Line() + quota }

func (k testKey) hashHex() string { return hex.EncodeToString(k.entry.Hash[:]) }

// keyed is an api built as main builds it, with everything it says
// captured: the slog output (including the effective-config line main
// logs), the access log and a count of the commands sent to Redis.
type keyed struct {
	*env
	cfg      config.Config
	logs     *syncBuffer
	access   *syncBuffer
	commands *atomic.Int64
}

func startKeyed(t *testing.T, environ map[string]string) *keyed {
	t.Helper()
	srv := redistest.Start(t)
	environ["REDIS_URL"] = srv.URL()
	cfg, err := config.Load(environ)
	if err != nil {
		t.Fatal(err)
	}
	hook := &countHook{}
	k := &keyed{cfg: cfg, logs: &syncBuffer{}, access: &syncBuffer{}, commands: &hook.n}
	log := slog.New(slog.NewJSONHandler(k.logs, nil))
	log.Info("starting api", cfg.Describe()...)
	h := buildAPI(t, server.Deps{Config: cfg, Log: log, AccessLog: k.access}, hook)
	api := httptest.NewServer(h)
	t.Cleanup(h.Close)
	t.Cleanup(api.Close)
	k.env = &env{srv: srv, rdb: srv.Client(t), api: api, keys: store.NewKeys(cfg.StreamKey)}
	return k
}

// postAs posts seed with "Authorization: Bearer key" (none when key is "")
// and any further header pairs.
func (e *env) postAs(t *testing.T, key string, hdr ...string) reply {
	t.Helper()
	if key != "" {
		hdr = append(hdr, "Authorization", "Bearer "+key)
	}
	return e.post(t, seed, hdr...)
}

func (e *env) getAs(t *testing.T, path, key string) reply {
	t.Helper()
	req, _ := http.NewRequest("GET", e.api.URL+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return do(t, req)
}

func TestAPIKeyRejectionsAnswer401BeforeRedis(t *testing.T) {
	good := newKey(t, "ingest")
	e := startKeyed(t, map[string]string{"API_KEYS": good.line("")})
	const bare, invalid = `Bearer realm="metrics"`, `Bearer realm="metrics", error="invalid_token"`
	tests := []struct {
		name      string
		auth      []string
		challenge string
	}{
		{"missing", nil, bare},
		{"wrong scheme", []string{"Basic " + good.key}, bare},
		{"empty", []string{""}, invalid},
		{"scheme without token", []string{"Bearer "}, invalid},
		{"unknown key", []string{"Bearer " + newKey(t, "ingest").key}, invalid},
		{"malformed: extra space", []string{"Bearer  " + good.key}, invalid},
		{"malformed: trailing junk", []string{"Bearer " + good.key + " x"}, invalid},
		{"the hash instead of the key", []string{"Bearer " + good.hashHex()}, invalid},
		{"two headers", []string{"Bearer " + good.key, "Bearer " + good.key}, invalid},
	}
	before := e.commands.Load()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.api.URL+"/api/metrics", strings.NewReader(seed))
			req.Header.Set("Content-Type", "application/json")
			req.Header["Authorization"] = tt.auth
			r := do(t, req)
			if r.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401 (%v)", r.status, r.body)
			}
			if got := r.header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tt.challenge)
			}
			if r.header.Get("Content-Type") != "application/problem+json" || r.body["status"] != float64(401) ||
				!strings.HasSuffix(r.body["type"].(string), "/unauthorized") || r.body["detail"] == "" {
				t.Errorf("not a 401 problem: %v %v", r.header, r.body)
			}
			if r.header.Get("RateLimit") != "" {
				t.Error("a 401 carries rate-limit headers: it must not have reached the limiter")
			}
		})
	}
	if n := e.commands.Load() - before; n != 0 {
		t.Fatalf("the rejected requests sent %d commands to Redis, want none", n)
	}
	if ks, _ := e.rdb.Keys(context.Background(), "*").Result(); len(ks) != 0 {
		t.Fatalf("rejected requests left keys in Redis: %v", ks)
	}
	r := e.postAs(t, good.key)
	if r.status != http.StatusCreated || e.streamLen(t) != 1 {
		t.Fatalf("valid key: %d %v, stream length %d", r.status, r.body, e.streamLen(t))
	}
	if e.commands.Load() == before {
		t.Fatal("the command count did not move for a stored request: the hook counts nothing")
	}
}

func TestAPIKeysHaveIndependentQuotas(t *testing.T) {
	a, b := newKey(t, "alpha"), newKey(t, "beta")
	e := startKeyed(t, map[string]string{"API_KEYS": a.line(";q=2;w=1h") + "," + b.line(""), "RATE_LIMIT_MAX": "3"})
	for i := 1; i <= 2; i++ {
		r := e.postAs(t, a.key)
		if r.status != http.StatusCreated {
			t.Fatalf("alpha %d: %d", i, r.status)
		}
		if got := r.header.Get("RateLimit-Policy"); got != `"default";q=2;w=3600` {
			t.Errorf("alpha's RateLimit-Policy %q, want its own q=2;w=3600", got)
		}
	}
	r := e.postAs(t, a.key)
	if r.status != http.StatusTooManyRequests || r.header.Get("RateLimit-Policy") != `"default";q=2;w=3600` ||
		!strings.Contains(r.body["detail"].(string), "2 requests per 1h0m0s exceeded for this API key") {
		t.Fatalf("alpha's 3rd: %d %v %v", r.status, r.header.Get("RateLimit-Policy"), r.body["detail"])
	}
	for i := 1; i <= 3; i++ {
		r := e.postAs(t, b.key)
		if r.status != http.StatusCreated || r.header.Get("RateLimit-Policy") != `"default";q=3;w=60` {
			t.Fatalf("beta %d (default quota, untouched by alpha's): %d %q", i, r.status, r.header.Get("RateLimit-Policy"))
		}
	}
	if r := e.postAs(t, b.key); r.status != http.StatusTooManyRequests {
		t.Fatalf("beta's 4th: %d", r.status)
	}
	ctx := context.Background()
	for name, want := range map[string]string{"alpha": "3", "beta": "4"} {
		if got := e.rdb.Get(ctx, e.keys.RateLimit(0, "key:"+name)).Val(); got != want {
			t.Errorf("counter of %s = %q, want %s", name, got, want)
		}
	}
	if n := e.rdb.Exists(ctx, e.keys.RateLimit(0, "127.0.0.1")).Val(); n != 0 {
		t.Error("a keyed request was counted against the client IP")
	}
	if n := e.streamLen(t); n != 5 {
		t.Fatalf("stream has %d entries, want 5", n)
	}
}

// The quota belongs to the key's name: the same key from two addresses,
// and the two keys of a rotation, share one counter.
func TestAPIKeyQuotaIgnoresTheIPAndSpansRotation(t *testing.T) {
	old, next := newKey(t, "fleet"), newKey(t, "fleet")
	file := filepath.Join(t.TempDir(), "api_keys")
	body := "# fleet, rotating\n" + old.line(";q=3") + "\n\n" + next.line(";q=3") + "\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startKeyed(t, map[string]string{"API_KEYS_FILE": file, "TRUSTED_PROXIES": "127.0.0.1/32"})
	steps := []struct {
		key, ip string
		status  int
	}{
		{old.key, "198.51.100.1", 201},
		{old.key, "198.51.100.2", 201},
		{next.key, "203.0.113.9", 201},
		{old.key, "198.51.100.3", 429},
		{next.key, "198.51.100.1", 429},
	}
	for i, s := range steps {
		if r := e.postAs(t, s.key, "X-Forwarded-For", s.ip); r.status != s.status {
			t.Fatalf("step %d (%s): %d, want %d", i+1, s.ip, r.status, s.status)
		}
	}
	if ks, _ := e.rdb.Keys(context.Background(), "*:rl:*").Result(); len(ks) != 1 || ks[0] != e.keys.RateLimit(0, "key:fleet") {
		t.Fatalf("rate-limit keys %v, want only fleet's", ks)
	}
}

func TestRateLimitDisabledSwitchesKeyQuotasOff(t *testing.T) {
	a := newKey(t, "alpha")
	e := startKeyed(t, map[string]string{"API_KEYS": a.line(";q=1;w=1h"), "RATE_LIMIT_ENABLED": "false"})
	for i := 1; i <= 3; i++ {
		r := e.postAs(t, a.key)
		if r.status != http.StatusCreated || r.header.Get("RateLimit-Policy") != "" {
			t.Fatalf("request %d: %d, RateLimit-Policy %q", i, r.status, r.header.Get("RateLimit-Policy"))
		}
	}
	if ks, _ := e.rdb.Keys(context.Background(), "*:rl:*").Result(); len(ks) != 0 {
		t.Fatalf("counters %v with the limiter off", ks)
	}
}

func TestAuthReads(t *testing.T) {
	a := newKey(t, "reader")
	reads := []string{"/api/metrics/summary?type=cpu_usage", "/api/metrics/series?type=cpu_usage&window=15m&step=5m",
		"/api/metrics/types", "/api/external-data/circuit", "/api/external-data"}
	open := []string{"/health", "/livez", "/metrics"}
	for _, on := range []bool{false, true} {
		environ := map[string]string{"API_KEYS": a.line(""), "EXTERNAL_FAILURE_RATE": "0"}
		if on {
			environ["AUTH_READS"] = "true"
		}
		e := startKeyed(t, environ)
		for _, path := range reads {
			if r := e.getAs(t, path, ""); (r.status == http.StatusUnauthorized) != on {
				t.Errorf("AUTH_READS=%v, GET %s without a key: %d", on, path, r.status)
			} else if on && r.header.Get("WWW-Authenticate") != `Bearer realm="metrics"` {
				t.Errorf("GET %s: WWW-Authenticate %q", path, r.header.Get("WWW-Authenticate"))
			}
			if r := e.getAs(t, path, a.key); r.status == http.StatusUnauthorized || r.status >= 500 {
				t.Errorf("AUTH_READS=%v, GET %s with the key: %d", on, path, r.status)
			}
			if r := e.getAs(t, path, "ra_unknown"); on && r.status != http.StatusUnauthorized {
				t.Errorf("AUTH_READS=true, GET %s with an unknown key: %d", path, r.status)
			}
		}
		for _, path := range open {
			if r := e.getAs(t, path, ""); r.status != http.StatusOK {
				t.Errorf("AUTH_READS=%v, GET %s without a key: %d, want it open", on, path, r.status)
			}
		}
		if r := e.postAs(t, ""); r.status != http.StatusUnauthorized {
			t.Errorf("AUTH_READS=%v: ingest without a key: %d", on, r.status)
		}
	}
}

// Neither a key nor its hash shows up anywhere the api writes: logs (the
// effective-config line included), the access log, /metrics and every
// response body; the key's name does, in the access log and as a label.
func TestAPIKeysNeverLeak(t *testing.T) {
	a, b := newKey(t, "alpha"), newKey(t, "beta")
	e := startKeyed(t, map[string]string{"API_KEYS": a.line(";q=1") + "," + b.line("")})
	stranger := newKey(t, "alpha")
	var bodies bytes.Buffer
	record := func(r reply) {
		bodies.WriteString(strings.Join(r.header.Values("WWW-Authenticate"), " "))
		bodies.WriteString(toJSON(r.body))
	}
	record(e.postAs(t, a.key)) // 201
	record(e.postAs(t, a.key)) // 429
	record(e.postAs(t, b.key)) // 201
	record(e.postAs(t, stranger.key))
	record(e.postAs(t, "x"+a.key))
	record(e.postAs(t, a.hashHex()))
	record(e.getAs(t, "/api/metrics/types", a.key))
	req, _ := http.NewRequest("POST", e.api.URL+"/api/metrics", strings.NewReader(`{"value":`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+b.key)
	record(do(t, req)) // 400
	resp, err := http.Get(e.api.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	outputs := map[string]string{"log": e.logs.String(), "access log": e.access.String(), "/metrics": string(text), "bodies": bodies.String()}
	for where, out := range outputs {
		for _, k := range []testKey{a, b, stranger} {
			for what, secret := range map[string]string{"key": k.key, "key without prefix": strings.TrimPrefix(k.key, apikey.KeyPrefix),
				"hash": k.hashHex(), "hash prefix": k.hashHex()[:16]} {
				if strings.Contains(strings.ToLower(out), strings.ToLower(secret)) {
					t.Errorf("%s shows a %s of %s", where, what, k.entry.Name)
				}
			}
		}
	}
	if !strings.Contains(e.logs.String(), `"API_KEYS":"xxxxx"`) {
		t.Errorf("the effective config does not mask API_KEYS: %s", e.logs.String())
	}
	for _, want := range []string{`"key":"alpha","status":201`, `"key":"alpha","status":429`, `"key":"beta","status":201`, `"key":"beta","status":400`} {
		if !strings.Contains(e.access.String(), want) {
			t.Errorf("access log lacks %s:\n%s", want, e.access.String())
		}
	}
	// The GET with a key is not authenticated (AUTH_READS is off), so only
	// the four POSTs with a known key are attributed.
	if strings.Count(e.access.String(), `"key":`) != 4 {
		t.Errorf("want a key field on exactly the 4 authenticated lines:\n%s", e.access.String())
	}
	for _, want := range []string{`ra_api_ingest_metrics_total{key="alpha"} 1`, `ra_api_ingest_metrics_total{key="beta"} 1`,
		`ra_api_rate_limited_total{key="alpha"} 1`, `ra_api_rate_limited_total{key="beta"} 0`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(string(text), "ra_api_"))
		}
	}
	if strings.Contains(e.logs.String(), "ingest is open") {
		t.Error("the open-ingest warning was logged although keys are configured")
	}
}

func TestNoKeysWarnsOnceThatIngestIsOpen(t *testing.T) {
	e := startKeyed(t, map[string]string{})
	if r := e.postAs(t, ""); r.status != http.StatusCreated {
		t.Fatalf("without keys ingest is open: %d", r.status)
	}
	if n := strings.Count(e.logs.String(), `"level":"WARN","msg":"no API keys configured (API_KEYS, API_KEYS_FILE): ingest is open`); n != 1 {
		t.Fatalf("%d open-ingest warnings, want 1:\n%s", n, e.logs.String())
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}

// syncBuffer is a bytes.Buffer several handler goroutines may write.
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
