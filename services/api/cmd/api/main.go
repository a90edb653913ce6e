// Command api serves the Resilient Analytics HTTP API. main only wires
// config → clients → server and handles signals; see package server.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/resilientanalytics/ra/pkg/httpserver"
	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/services/api/config"
	"github.com/resilientanalytics/ra/services/api/internal/server"
	"github.com/resilientanalytics/ra/services/api/internal/telemetry"
)

func main() {
	cfg, err := config.Load(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "config:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, newLogger(cfg.LogLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	log.Info("starting api", cfg.Describe()...)
	rdb, err := redisclient.New(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()

	api, err := server.New(server.Deps{Config: cfg, Redis: rdb, Log: log, Metrics: telemetry.New()})
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

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
