// Command api serves the Resilient Analytics HTTP API. main only wires
// config → clients → server and handles signals; see package server.
//
// `api keygen NAME` prints a new API key and the API_KEYS entry for it
// (package apikey), without reading any configuration.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/resilientanalytics/ra/pkg/httpserver"
	"github.com/resilientanalytics/ra/pkg/logbuf"
	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/apikey"
	"github.com/resilientanalytics/ra/services/api/internal/server"
	"github.com/resilientanalytics/ra/services/api/internal/telemetry"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "keygen" {
		os.Exit(apikey.Keygen(os.Args[2:], os.Stdout, os.Stderr))
	}
	cfg, err := config.Load(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "config:", err)
		os.Exit(2)
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		// The live heap is a few MiB while every request allocates, so at
		// the default GOGC=100 the collector runs many times a second under
		// load; 400 trades a larger, still small heap (far below the 100 MiB
		// budget) for fewer cycles. The A/B figure that keeps it is in
		// docs/benchmarks.md.
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// One JSON line per request: buffered so logging costs no syscall per
	// request (lines reach stderr within 100ms, all of them on exit).
	logs := logbuf.New(os.Stderr, 100*time.Millisecond)
	log := newLogger(logs, cfg.LogLevel)
	redisclient.SetLogger(log) // go-redis' own lines as JSON too
	err = run(ctx, cfg, log, logs)
	_ = logs.Close()
	if err != nil {
		// The buffered log is closed: this last line goes to stderr
		// directly, as JSON like every other.
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("api stopped with an error", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config.Config, log *slog.Logger, accessLog io.Writer) error {
	log.Info("starting api", cfg.Describe()...)
	rdb, err := redisclient.New(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()

	st, err := store.New(rdb, cfg.StreamKey, cfg.Partitions, store.WithMaxTypes(cfg.Ingest.MaxTypes))
	if err != nil {
		return err
	}
	api, err := server.New(server.Deps{Config: cfg, Store: st, Log: log, AccessLog: accessLog, Metrics: telemetry.New()})
	if err != nil {
		return err
	}
	defer api.Close() // after the server drained: in-flight appends finish first

	hcfg := httpserver.Config{ShutdownTimeout: cfg.ShutdownTimeout}
	addr := ":" + strconv.Itoa(cfg.Port)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return api.Run(ctx) })
	g.Go(func() error {
		log.Info("listening", "addr", addr)
		return httpserver.ListenAndServe(ctx, httpserver.New(api, hcfg), addr, hcfg)
	})
	err = g.Wait()
	log.Info("api stopped", "err", err)
	return err
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
