package httpserver_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/httpserver"
)

func TestServeDrainsInFlightRequestOnCancel(t *testing.T) {
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(200 * time.Millisecond)
		w.WriteHeader(http.StatusTeapot)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg := httpserver.Config{ShutdownTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- httpserver.Serve(ctx, httpserver.New(h, cfg), ln, cfg) }()

	type result struct {
		status int
		err    error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil {
			resc <- result{err: err}
			return
		}
		resp.Body.Close()
		resc <- result{status: resp.StatusCode}
	}()
	<-started
	cancel()
	res := <-resc
	if res.err != nil || res.status != http.StatusTeapot {
		t.Fatalf("in-flight request: status %d err %v; want it completed", res.status, res.err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve returned %v, want nil after graceful shutdown", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String()); err == nil {
		t.Fatal("server still accepts connections after shutdown")
	}
}

func TestNewSetsTimeouts(t *testing.T) {
	srv := httpserver.New(http.NotFoundHandler(), httpserver.Config{})
	if srv.ReadHeaderTimeout == 0 || srv.ReadTimeout == 0 || srv.IdleTimeout == 0 {
		t.Errorf("timeouts unset: %+v", srv)
	}
	if srv.MaxHeaderBytes != 16<<10 {
		t.Errorf("MaxHeaderBytes = %d, want 16 KiB", srv.MaxHeaderBytes)
	}
	if srv := httpserver.New(http.NotFoundHandler(), httpserver.Config{MaxHeaderBytes: 1 << 20}); srv.MaxHeaderBytes != 1<<20 {
		t.Errorf("MaxHeaderBytes = %d, want the configured 1 MiB", srv.MaxHeaderBytes)
	}
}

// TestHeaderLimit: a header block just under 16 KiB is served; one clearly
// over it gets 431 before the handler. net/http's slack (4 KiB on the read
// limit, and what its 4 KiB read buffer holds beyond) lets up to about
// 24 KiB through, so "clearly over" is 32 KiB.
func TestHeaderLimit(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- httpserver.Serve(ctx, httpserver.New(h, httpserver.Config{}), ln, httpserver.Config{}) }()
	t.Cleanup(func() { cancel(); <-done })
	for _, tt := range []struct {
		name  string
		bytes int
		want  int
	}{
		{"just under 16 KiB", 16<<10 - 512, http.StatusNoContent},
		{"32 KiB", 32 << 10, http.StatusRequestHeaderFieldsTooLarge},
		{"1 MiB", 1 << 20, http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/", nil)
			req.Header.Set("X-Big", strings.Repeat("a", tt.bytes))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}
