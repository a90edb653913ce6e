// Command aggregator consumes the metrics streams (one per partition,
// STREAM_PARTITIONS) as a member of each partition's consumer group and folds
// every entry into its partition's summary hash of its type exactly once.
// Configuration comes from the environment (see package config); it exits 2
// on an invalid configuration and 0 after a clean SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/resilientanalytics/ra/pkg/httpserver"
	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/pkg/store"
	"github.com/resilientanalytics/ra/services/aggregator/config"
	"github.com/resilientanalytics/ra/services/aggregator/internal/apply"
	"github.com/resilientanalytics/ra/services/aggregator/internal/consumer"
	"github.com/resilientanalytics/ra/services/aggregator/internal/health"
	"github.com/resilientanalytics/ra/services/aggregator/internal/recovery"
	"github.com/resilientanalytics/ra/services/aggregator/internal/telemetry"
	"github.com/resilientanalytics/ra/services/aggregator/internal/trim"
)

func main() {
	cfg, err := config.Load(nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "config: %v\n", err)
		os.Exit(2)
	}
	log := newLogger(cfg.LogLevel)
	redisclient.SetLogger(log) // go-redis' own lines as JSON too
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("aggregator failed", "err", err)
		stop()
		os.Exit(1)
	}
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// partition is the set of components that consume one partition: each
// partition has its own stream and group, so its own read loop, recovery
// (claims and dead letters) and trimming.
type partition struct {
	index   int
	group   *store.Group
	cons    *consumer.Consumer
	rec     *recovery.Reclaimer
	trimmer *trim.Trimmer
}

// newPartition builds the components of partition p.
func newPartition(st *store.Store, cfg config.Config, p int, log *slog.Logger, m *telemetry.Metrics) (*partition, error) {
	group := st.Group(p, cfg.Group)
	log = log.With("partition", p)
	applier, err := apply.New(group, apply.Options{
		Consumer: cfg.Consumer, DeadLetterMax: cfg.DeadLetterMax, Logger: log, Metrics: m,
		BucketRetention: cfg.BucketRetention,
	})
	if err != nil {
		return nil, err
	}
	cons, err := consumer.New(group, applier, consumer.Options{
		Group: cfg.Group, Name: cfg.Consumer, BatchSize: cfg.BatchSize, Block: cfg.Block,
		MaxDeliveries: cfg.MaxDeliveries, ShutdownTimeout: cfg.ShutdownTimeout, Logger: log, Metrics: m,
	})
	if err != nil {
		return nil, err
	}
	rec, err := recovery.New(group, applier, recovery.Options{
		Consumer: cfg.Consumer, Interval: cfg.ClaimInterval,
		MinIdle: cfg.ClaimMinIdle, MaxDeliveries: cfg.MaxDeliveries, BatchSize: cfg.BatchSize,
		ShutdownTimeout: cfg.ShutdownTimeout, Logger: log, Metrics: m,
	})
	if err != nil {
		return nil, err
	}
	trimmer, err := trim.New(st, trim.Options{
		Partition: p, Retention: cfg.Retention, Interval: cfg.TrimInterval, Logger: log, Metrics: m,
	})
	if err != nil {
		return nil, err
	}
	return &partition{index: p, group: group, cons: cons, rec: rec, trimmer: trimmer}, nil
}

// run wires the components and runs them until ctx ends: for each of the
// STREAM_PARTITIONS partitions a read loop, a recovery loop and a trim loop,
// all under one errgroup. Stop order: the read loops finish their batches,
// the recovery and trim loops stop, then the consumer leaves each
// partition's group (only where it owns no pending entry) and the health
// server shuts down last, so /health answers while the batches are
// finished.
func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	log.Info("effective config", cfg.Describe()...)
	rdb, err := redisclient.New(cfg.Redis)
	if err != nil {
		return fmt.Errorf("redis client: %w", err)
	}
	defer rdb.Close()

	st, err := store.New(rdb, cfg.StreamKey, cfg.Partitions)
	if err != nil {
		return err
	}
	m := telemetry.New()
	parts := make([]*partition, 0, cfg.Partitions)
	hparts := make([]health.Partition, 0, cfg.Partitions)
	for p := range cfg.Partitions {
		part, err := newPartition(st, cfg, p, log, m)
		if err != nil {
			return err
		}
		parts = append(parts, part)
		hparts = append(hparts, health.Partition{Index: p, Stream: part.group.Stream(), Group: part.group, Loop: part.cons})
	}
	checker, err := health.New(st, hparts, health.Options{Logger: log, Metrics: m})
	if err != nil {
		return err
	}

	// The health server outlives the workers: it stops on its own context,
	// cancelled after the workers have returned.
	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSrv()
	hcfg := httpserver.Config{ShutdownTimeout: cfg.ShutdownTimeout}
	srv := httpserver.New(checker.Handler(), hcfg)
	addr := net.JoinHostPort("", strconv.Itoa(cfg.HealthPort))
	srvErr := make(chan error, 1)
	go func() { srvErr <- httpserver.ListenAndServe(srvCtx, srv, addr, hcfg) }()

	log.Info("aggregator started", "stream", st.Keys().Stream(0), "partitions", cfg.Partitions, "group", cfg.Group,
		"consumer", cfg.Consumer, "health_addr", addr)
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range parts {
		g.Go(func() error { return p.cons.Run(gctx) })
		g.Go(func() error { return p.rec.Run(gctx) })
		g.Go(func() error { return p.trimmer.Run(gctx) })
	}
	g.Go(func() error { return checker.Run(gctx) })
	g.Go(func() error {
		// A health server that cannot start (port taken) stops the service.
		select {
		case err := <-srvErr:
			srvErr <- err
			if err != nil {
				return err
			}
			return errors.New("health server stopped")
		case <-gctx.Done():
			return nil
		}
	})
	werr := g.Wait()

	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	for _, p := range parts {
		plog := log.With("partition", p.index, "stream", p.group.Stream())
		if left, err := p.cons.Leave(lctx); err != nil {
			plog.Warn("could not leave the group; the consumer stays registered", "err", err)
		} else if left {
			plog.Info("left the group", "consumer", cfg.Consumer)
		} else {
			plog.Warn("kept the consumer: it still owns pending entries, another replica will claim them", "consumer", cfg.Consumer)
		}
	}

	stopSrv()
	if err := <-srvErr; err != nil && werr == nil {
		werr = err
	}
	if werr != nil {
		return werr
	}
	log.Info("aggregator stopped")
	return nil
}
