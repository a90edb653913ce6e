// Package config is the aggregator's configuration: every variable DESIGN.md
// lists for it, with its default, loaded from the environment and validated
// once at start. It is a public package so the deploy tests can check that
// the compose file sets only variables the aggregator reads.
package config

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/resilientanalytics/ra/pkg/config"
	"github.com/resilientanalytics/ra/pkg/redisclient"
)

// Config is the aggregator's configuration.
type Config struct {
	// Redis is the connection (REDIS_URL and timeouts).
	Redis redisclient.Config
	// StreamKey names the key family (stream, summaries, dead letters).
	StreamKey string `env:"STREAM_KEY" envDefault:"metrics"`
	// Partitions is the number of stream partitions ({<STREAM_KEY>:<p>}
	// hash tags, p = 0..Partitions-1); more than one spreads the keys over
	// the slots of a Redis Cluster.
	Partitions int `env:"STREAM_PARTITIONS" envDefault:"1"`
	// Group is the consumer group every replica joins.
	Group string `env:"CONSUMER_GROUP" envDefault:"aggregators"`
	// Consumer is this replica's name in the group. Empty means
	// "<hostname>-<pid>", so scaled replicas never share a consumer (a
	// shared name would make two processes own one pending list).
	Consumer string `env:"CONSUMER_NAME"`
	// BatchSize is the most entries one XREADGROUP returns and one script
	// call applies.
	BatchSize int `env:"AGG_BATCH_SIZE" envDefault:"256"`
	// Block is how long one XREADGROUP waits for new entries. It must be > 0
	// (BLOCK 0 waits forever) and short: go-redis does not cancel a blocking
	// read when its context ends, so it bounds how long shutdown waits.
	Block time.Duration `env:"AGG_BLOCK" envDefault:"2s"`
	// ClaimInterval is how often the recovery loop looks for entries other
	// consumers left pending.
	ClaimInterval time.Duration `env:"AGG_CLAIM_INTERVAL" envDefault:"5s"`
	// ClaimMinIdle is how long an entry must have been pending untouched
	// before it is claimed from its consumer.
	ClaimMinIdle time.Duration `env:"AGG_CLAIM_MIN_IDLE" envDefault:"30s"`
	// MaxDeliveries is the crash-loop valve: an entry delivered more often
	// than this without being acknowledged is dead-lettered.
	MaxDeliveries int64 `env:"AGG_MAX_DELIVERIES" envDefault:"10"`
	// DeadLetterMax caps the dead-letter stream (MAXLEN ~).
	DeadLetterMax int64 `env:"DEAD_LETTER_MAX" envDefault:"100000"`
	// Retention is how long processed entries stay in the stream; only
	// entries older than this and processed by every group are trimmed.
	Retention time.Duration `env:"STREAM_RETENTION" envDefault:"24h"`
	// BucketRetention is how long the per-minute buckets behind windowed
	// summaries and series are kept: each hour's hash expires this long
	// after the hour ends. Metrics older than this (by event time) when
	// applied still count in the all-time summary but are not bucketed;
	// the api reads the same variable to reject older ranges.
	BucketRetention time.Duration `env:"BUCKET_RETENTION" envDefault:"168h"`
	// TrimInterval is how often the stream is trimmed.
	TrimInterval time.Duration `env:"AGG_TRIM_INTERVAL" envDefault:"1m"`
	// HealthPort serves /health, /livez and /metrics.
	HealthPort int `env:"AGG_HEALTH_PORT" envDefault:"8001"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`
	// ShutdownTimeout bounds finishing the batch in hand and the health
	// server's drain on SIGTERM.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"10s"`
}

// Load reads the configuration from environ (the process environment when
// nil), fills the default consumer name and validates it. The error names
// the offending variable.
func Load(environ map[string]string) (Config, error) {
	var c Config
	if err := config.Load(&c, environ); err != nil {
		return Config{}, err
	}
	if c.Consumer == "" {
		c.Consumer = DefaultConsumer()
	}
	return c, c.Validate()
}

// DefaultConsumer is "<hostname>-<pid>": unique per process on a host, and
// per container in compose (each has its own hostname).
func DefaultConsumer() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "aggregator"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}

// Validate reports the first invalid setting, naming its variable.
func (c Config) Validate() error {
	if err := c.Redis.Validate(); err != nil {
		return err
	}
	var cs config.Checks
	check := cs.Check
	cs.Stream(c.StreamKey, c.Partitions)
	check(c.Group != "" && !strings.ContainsAny(c.Group, " \t\r\n"), "CONSUMER_GROUP: must be non-empty without spaces, got %q", c.Group)
	check(c.Consumer != "" && !strings.ContainsAny(c.Consumer, " \t\r\n"), "CONSUMER_NAME: must not contain spaces, got %q", c.Consumer)
	check(c.BatchSize >= 1 && c.BatchSize <= 10000, "AGG_BATCH_SIZE: must be 1..10000, got %d", c.BatchSize)
	check(c.Block >= time.Millisecond, "AGG_BLOCK: must be > 0 (BLOCK 0 waits forever), got %s", c.Block)
	check(c.ClaimInterval > 0, "AGG_CLAIM_INTERVAL: must be > 0, got %s", c.ClaimInterval)
	check(c.ClaimMinIdle > 0, "AGG_CLAIM_MIN_IDLE: must be > 0, got %s", c.ClaimMinIdle)
	check(c.MaxDeliveries >= 1, "AGG_MAX_DELIVERIES: must be >= 1, got %d", c.MaxDeliveries)
	check(c.DeadLetterMax >= 1, "DEAD_LETTER_MAX: must be >= 1, got %d", c.DeadLetterMax)
	check(c.Retention >= 0, "STREAM_RETENTION: must be >= 0, got %s", c.Retention)
	check(c.BucketRetention >= time.Minute, "BUCKET_RETENTION: must be >= 1m, got %s", c.BucketRetention)
	check(c.TrimInterval > 0, "AGG_TRIM_INTERVAL: must be > 0, got %s", c.TrimInterval)
	check(c.HealthPort > 0 && c.HealthPort < 65536, "AGG_HEALTH_PORT: must be 1..65535, got %d", c.HealthPort)
	check(c.ShutdownTimeout > 0, "SHUTDOWN_TIMEOUT: must be > 0, got %s", c.ShutdownTimeout)
	cs.LogLevel(c.LogLevel)
	return cs.Err()
}

// Describe renders the effective configuration for the start-up log, with
// the Redis password masked (REDIS_URL is tagged `secret:"url"`).
func (c Config) Describe() []any { return config.Describe(&c) }
