// Package telemetry holds the aggregator's Prometheus metrics in a registry
// of their own (never the global one), so tests and several components in
// one process do not collide and /metrics shows exactly what we export.
package telemetry

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the aggregator's collectors. Create them with New.
type Metrics struct {
	// Registry holds every collector below plus the Go and process ones.
	Registry *prometheus.Registry

	// Processed counts entries folded into a summary (acknowledged by this
	// replica's script; redeliveries another replica already applied are not
	// counted).
	Processed prometheus.Counter
	// Duplicates counts entries the script skipped because their XACK
	// returned 0: someone else already applied them.
	Duplicates prometheus.Counter
	// DeadLettered counts entries moved to the dead-letter stream, by reason
	// class ("decode", "max_deliveries", "corrupt" or "non_finite").
	DeadLettered *prometheus.CounterVec
	// Reclaimed counts entries claimed from other consumers.
	Reclaimed prometheus.Counter
	// Trimmed counts entries removed from the stream by trimming.
	Trimmed prometheus.Counter
	// BatchSize is the number of entries per applied batch.
	BatchSize prometheus.Histogram
	// ApplyLatency is the duration of one batch apply (script round trip).
	ApplyLatency prometheus.Histogram
	// Errors counts failed Redis operations by operation.
	Errors *prometheus.CounterVec
	// Lag is the group's lag from XINFO GROUPS; -1 when Redis cannot tell.
	Lag prometheus.Gauge
	// Pending is the group's pending-entries count.
	Pending prometheus.Gauge
	// PartitionLag and PartitionPending are Lag and Pending per partition
	// (label "partition"); Lag and Pending are their totals (Lag is -1 when
	// any partition's is unknown).
	PartitionLag, PartitionPending *prometheus.GaugeVec
}

// New registers a fresh set of collectors.
func New() *Metrics {
	const ns = "aggregator"
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Processed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "processed_total",
			Help: "Stream entries folded into their summary by this replica."}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "duplicates_total",
			Help: "Redelivered entries skipped because they were already acknowledged."}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "dead_lettered_total",
			Help: "Stream entries moved to the dead-letter stream, by reason."}, []string{"reason"}),
		Reclaimed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "reclaimed_total",
			Help: "Pending entries claimed from idle consumers."}),
		Trimmed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "trimmed_total",
			Help: "Processed entries trimmed from the stream."}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "batch_size",
			Help: "Entries per applied batch.", Buckets: []float64{1, 4, 16, 64, 128, 256, 512, 1024, 4096}}),
		ApplyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "apply_seconds",
			Help: "Duration of one batch apply (one script round trip).", Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12)}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "redis_errors_total",
			Help: "Failed Redis operations, by operation."}, []string{"op"}),
		Lag: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "group_lag",
			Help: "Entries not yet delivered to the group (XINFO GROUPS lag); -1 when unknown."}),
		Pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "group_pending",
			Help: "Entries delivered but not yet acknowledged in the group."}),
		PartitionLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "partition_group_lag",
			Help: "Entries of one partition not yet delivered to the group; -1 when unknown."}, []string{"partition"}),
		PartitionPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "partition_group_pending",
			Help: "Entries of one partition delivered but not yet acknowledged in the group."}, []string{"partition"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.Processed, m.Duplicates, m.DeadLettered, m.Reclaimed, m.Trimmed,
		m.BatchSize, m.ApplyLatency, m.Errors, m.Lag, m.Pending, m.PartitionLag, m.PartitionPending,
	)
	// Export the known label values at 0, so dashboards and alerts see the
	// series before the first dead letter.
	m.DeadLettered.WithLabelValues("decode")
	m.DeadLettered.WithLabelValues("max_deliveries")
	m.DeadLettered.WithLabelValues("corrupt")
	m.DeadLettered.WithLabelValues("non_finite")
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
