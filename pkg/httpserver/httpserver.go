// Package httpserver runs an http.Server until its context ends and then
// shuts it down gracefully under a deadline. Both services use it so they
// stop the same way on SIGTERM.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// DefaultMaxHeaderBytes bounds a request's header block. Enough for any
// honest client (browsers send a few KiB), small enough that connections
// holding unfinished headers cannot grow the process much before
// ReadHeaderTimeout ends them. Larger headers get net/http's 431.
const DefaultMaxHeaderBytes = 16 << 10

// Config holds the server timeouts and limits; zero values get safe
// defaults.
type Config struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// MaxHeaderBytes bounds the request line and headers (net/http adds
	// 4 KiB of slack on top).
	MaxHeaderBytes int
	// ShutdownTimeout bounds the graceful drain after ctx ends.
	ShutdownTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 5 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 15 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 120 * time.Second
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	return c
}

// New returns a server for h with cfg's timeouts and header limit.
func New(h http.Handler, cfg Config) *http.Server {
	cfg = cfg.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
	}
}

// Serve serves on ln until ctx ends, then shuts down within
// cfg.ShutdownTimeout. A clean shutdown returns nil.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, cfg Config) error {
	cfg = cfg.withDefaults()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("http serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http serve: %w", err)
	}
	return nil
}

// ListenAndServe listens on addr and calls Serve.
func ListenAndServe(ctx context.Context, srv *http.Server, addr string, cfg Config) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return Serve(ctx, srv, ln, cfg)
}
