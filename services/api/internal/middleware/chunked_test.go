package middleware_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/resilientanalytics/ra/services/api/internal/middleware"
)

// TestCloseChunked drives a real server with hand-written bytes: after a
// chunked request (with or without a Content-Length beside it) the server
// answers once and closes, so a request smuggled behind it is never served;
// a request framed by Content-Length alone keeps the connection.
func TestCloseChunked(t *testing.T) {
	var (
		mu     sync.Mutex
		served []string
	)
	srv := httptest.NewServer(middleware.CloseChunked(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		served = append(served, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})))
	t.Cleanup(srv.Close)
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	tests := []struct {
		name      string
		request   string
		responses int
		close     bool
	}{
		{"Content-Length and Transfer-Encoding",
			"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 1, true},
		{"chunked alone",
			"POST /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" + smuggled, 1, true},
		{"Content-Length alone keeps the connection",
			"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}" + smuggled, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			served = nil
			mu.Unlock()
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tt.request); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			var got int
			var closeHeader bool
			for got < 2 {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					break // the server closed the connection
				}
				resp.Body.Close()
				got++
				if got == 1 {
					closeHeader = resp.Close
				}
				if resp.Close {
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if got != tt.responses || closeHeader != tt.close {
				t.Fatalf("%d responses (first closes: %v), want %d (%v); served %v", got, closeHeader, tt.responses, tt.close, served)
			}
			if tt.close {
				// Nothing more may come: the server must have closed.
				if _, err := br.ReadByte(); err == nil {
					t.Fatal("the connection is still open after Connection: close")
				}
				if strings.Contains(strings.Join(served, ","), "/smuggled") {
					t.Fatalf("served the smuggled request: %v", served)
				}
			}
		})
	}
}
