package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/redistest"
	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/server"
)

func TestDashboardRoutes(t *testing.T) {
	e := start(t, map[string]string{"CONSUMER_GROUP": "dash"})
	for _, tc := range []struct {
		method, path string
		code         int
		ctype        string
	}{
		{http.MethodGet, "/", 200, "text/html; charset=utf-8"},
		{http.MethodHead, "/", 200, "text/html; charset=utf-8"},
		{http.MethodGet, "/assets/app.js", 200, "text/javascript; charset=utf-8"},
		{http.MethodHead, "/assets/app.css", 200, "text/css; charset=utf-8"},
		{http.MethodGet, "/api/system", 200, "application/json"},
		{http.MethodPost, "/", 405, "application/problem+json"},
		{http.MethodGet, "/api/metrics/series/stream?type=cpu", 400, "application/problem+json"},
	} {
		r := do(t, mustReq(t, tc.method, e.api.URL+tc.path))
		if r.status != tc.code || r.header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, r.status, r.header.Get("Content-Type"), tc.code, tc.ctype)
		}
	}
	r := do(t, mustReq(t, http.MethodGet, e.api.URL+"/api/system"))
	if r.body["group"] != "dash" || r.body["redis"] != "ok" || r.body["circuit_state"] != "CLOSED" {
		t.Errorf("/api/system %v: want group dash (CONSUMER_GROUP), redis ok, CLOSED", r.body)
	}
}

// TestRunEndsLiveStreams: when the api is told to stop (Run's context
// ends), open streams end at once, so the server's drain is not held up.
func TestRunEndsLiveStreams(t *testing.T) {
	srv := redistest.Start(t)
	cfg, err := config.Load(map[string]string{"REDIS_URL": srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	api := buildAPI(t, server.Deps{Config: cfg})
	ts := httptest.NewServer(api)
	t.Cleanup(api.Close)
	t.Cleanup(ts.Close)
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- api.Run(ctx) }()

	resp, err := http.Get(ts.URL + "/api/metrics/series/stream?type=never_seen&window=15m")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	for { // the first event: the type is unknown, a 404 problem inside the stream
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var p struct{ Status int }
			if json.Unmarshal([]byte(data), &p) != nil || p.Status != 404 {
				t.Fatalf("first event %q, want a 404 problem", data)
			}
			break
		}
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(br); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the stream ended with %v, want a clean end", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream is still open after Run returned")
	}
}
