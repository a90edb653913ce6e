package httpserver_test

import (
	"context"
	"net"
	"net/http"
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
}
