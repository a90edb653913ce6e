package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(ok.Close)
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"status":"unavailable"}`, http.StatusServiceUnavailable)
	}))
	t.Cleanup(unavailable.Close)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // runs before slow.Close

	// A port nothing listens on: listen, note the address, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/health"
	ln.Close()

	tests := []struct {
		name       string
		args       []string
		env        string // HEALTHCHECK_URL
		wantCode   int
		wantStderr string
	}{
		{name: "2xx is healthy", args: []string{ok.URL + "/health"}, wantCode: 0},
		{name: "503 is unhealthy", args: []string{unavailable.URL + "/health"}, wantCode: 1, wantStderr: "status 503"},
		{name: "timeout", args: []string{"-timeout", "100ms", slow.URL}, wantCode: 1, wantStderr: "no answer within 100ms"},
		{name: "connection refused", args: []string{refused}, wantCode: 1, wantStderr: "refused"},
		{name: "no args, no HEALTHCHECK_URL", args: nil, wantCode: 2, wantStderr: "usage"},
		{name: "no args uses HEALTHCHECK_URL", env: ok.URL + "/health", wantCode: 0},
		{name: "HEALTHCHECK_URL unhealthy", env: unavailable.URL, wantCode: 1, wantStderr: "status 503"},
		{name: "argument wins over HEALTHCHECK_URL", args: []string{ok.URL}, env: unavailable.URL, wantCode: 0},
		{name: "two args", args: []string{ok.URL, ok.URL}, wantCode: 2, wantStderr: "usage"},
		{name: "not a URL", args: []string{"localhost:8000"}, wantCode: 2, wantStderr: "not an http(s) URL"},
		{name: "bad flag", args: []string{"-nope", ok.URL}, wantCode: 2, wantStderr: "flag provided but not defined"},
		{name: "bad timeout", args: []string{"-timeout", "0s", ok.URL}, wantCode: 2, wantStderr: "-timeout must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			getenv := func(k string) string {
				if k == "HEALTHCHECK_URL" {
					return tt.env
				}
				return ""
			}
			code := run(tt.args, getenv, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			got := stderr.String()
			if tt.wantCode == 0 {
				if got != "" {
					t.Errorf("stderr = %q, want nothing", got)
				}
				return
			}
			if !strings.Contains(got, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", got, tt.wantStderr)
			}
			if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
				t.Errorf("stderr = %q, want exactly one line", got)
			}
		})
	}
}
