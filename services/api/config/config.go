// Package config is the api's configuration: every variable DESIGN.md lists,
// with its default, loaded from the environment and validated once at start.
// It is a public package so the deploy tests can check that the compose file
// sets only variables the api reads.
package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/resilientanalytics/ra/pkg/config"
	"github.com/resilientanalytics/ra/pkg/redisclient"
	"github.com/resilientanalytics/ra/services/api/internal/apikey"
)

// Config is the api's configuration.
type Config struct {
	// Port is the HTTP port.
	Port int `env:"PORT" envDefault:"8000"`
	// Redis is the connection (REDIS_URL and timeouts).
	Redis redisclient.Config
	// StreamKey names the key family (stream, summaries, rate-limit keys).
	StreamKey string `env:"STREAM_KEY" envDefault:"metrics"`
	// Partitions is the number of stream partitions ({<STREAM_KEY>:<p>}
	// hash tags, p = 0..Partitions-1); more than one spreads the keys over
	// the slots of a Redis Cluster.
	Partitions int `env:"STREAM_PARTITIONS" envDefault:"1"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`
	// BucketRetention is how long the aggregator keeps per-minute buckets
	// (the same variable it reads): windowed summaries and series reject a
	// range that starts before now - BucketRetention or ends after
	// now + BucketRetention, where no bucket can exist.
	BucketRetention time.Duration `env:"BUCKET_RETENTION" envDefault:"168h"`
	// ShutdownTimeout bounds the graceful drain on SIGTERM.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"10s"`
	// ConsumerGroup is the aggregators' consumer group (the same variable
	// they read), whose lag and pending GET /api/system reports.
	ConsumerGroup string `env:"CONSUMER_GROUP" envDefault:"aggregators"`
	// SSEMaxStreams bounds the concurrent live streams of the dashboard
	// (GET /api/metrics/series/stream); past it a stream gets a 503.
	SSEMaxStreams int `env:"SSE_MAX_STREAMS" envDefault:"100"`

	Ingest    Ingest
	RateLimit RateLimit
	Cache     Cache
	External  External
	Circuit   Circuit
	Auth      Auth
}

// Auth configures the optional ingest API keys (package apikey). With
// none, ingest is open to anyone who can reach the port.
type Auth struct {
	// Keys are entries `name=sha256:<hex>[;q=<n>;w=<window>]` separated by
	// commas. Only hashes, but masked in the config log all the same.
	Keys string `env:"API_KEYS" secret:"true"`
	// KeysFile is a file of such entries, one a line (# comments), e.g. a
	// compose secret; not together with Keys.
	KeysFile string `env:"API_KEYS_FILE"`
	// Reads protects every GET /api/... endpoint with the keys as well.
	Reads bool `env:"AUTH_READS" envDefault:"false"`
}

// Load reads and checks the configured keys; errors name the variable and
// the entry's position or line, never a hash.
func (a Auth) Load() (*apikey.Set, error) { return apikey.Load(a.Keys, a.KeysFile) }

// Ingest limits POST /api/metrics.
type Ingest struct {
	// MaxBatch is the most metrics one request may carry.
	MaxBatch int `env:"INGEST_MAX_BATCH" envDefault:"1000"`
	// MaxBodyBytes is the largest accepted request body, as sent and, for
	// a gzip body, decompressed.
	MaxBodyBytes int64 `env:"INGEST_MAX_BODY_BYTES" envDefault:"1048576"`
	// Coalesce merges the appends of concurrent requests into one Redis
	// script call per partition (one round trip for many requests); false
	// sends one call per request.
	Coalesce bool `env:"INGEST_COALESCE" envDefault:"true"`
	// MaxAbsValue bounds |value| of every metric, so no sum the store keeps
	// can overflow float64.
	MaxAbsValue float64 `env:"INGEST_MAX_ABS_VALUE" envDefault:"1e18"`
	// MaxFuture is how far ahead of the api's clock a timestamp may be.
	MaxFuture time.Duration `env:"INGEST_MAX_FUTURE" envDefault:"10m"`
	// IdempotencyTTL is how long the record of a request's Idempotency-Key
	// (its body's fingerprint and ids) is kept: a retry with the key within
	// it gets the original answer and stores nothing.
	IdempotencyTTL time.Duration `env:"IDEMPOTENCY_TTL" envDefault:"24h"`
	// MaxTypes caps the distinct metric types of each stream partition: a
	// request that would add a type past it is refused whole (422
	// type-limit-reached), atomically with the append. Per partition, so
	// with STREAM_PARTITIONS=n up to n times as many types may exist.
	MaxTypes int `env:"MAX_TYPES" envDefault:"10000"`
}

// RateLimit configures the per-client fixed-window limiter.
type RateLimit struct {
	// Enabled switches the limiter on.
	Enabled bool `env:"RATE_LIMIT_ENABLED" envDefault:"true"`
	// Max requests per client per window.
	Max int `env:"RATE_LIMIT_MAX" envDefault:"5"`
	// Window length; it starts at a client's first request.
	Window time.Duration `env:"RATE_LIMIT_WINDOW" envDefault:"60s"`
	// TrustedProxies are CIDRs whose X-Forwarded-For is honoured.
	TrustedProxies []string `env:"TRUSTED_PROXIES" envSeparator:","`
}

// Cache configures the in-process summary cache.
type Cache struct {
	// TTL is how long a summary is served without asking Redis.
	TTL time.Duration `env:"CACHE_TTL" envDefault:"60s"`
	// PastTTL is how long a windowed summary or series whose range ended
	// more than TTL ago is served without asking Redis. Such a range only
	// changes when a metric arrives late (its event time long past), so it
	// may be cached longer than one ending now. A value below TTL counts
	// as TTL.
	PastTTL time.Duration `env:"CACHE_PAST_TTL" envDefault:"10m"`
	// StaleMax is how long past its TTL an entry is kept for stale-if-error.
	StaleMax time.Duration `env:"CACHE_STALE_MAX" envDefault:"10m"`
	// MaxEntries bounds the cache size.
	MaxEntries int `env:"CACHE_MAX_ENTRIES" envDefault:"10000"`
	// MaxBytes bounds the bytes of all the api's caches together (summary,
	// series recent and past, types): a plain number of bytes or one with a
	// KiB, MiB or GiB suffix.
	MaxBytes ByteSize `env:"CACHE_MAX_BYTES" envDefault:"64MiB"`
	// ReadTimeout bounds one Redis read on a miss (detached from the caller).
	ReadTimeout time.Duration `env:"CACHE_READ_TIMEOUT" envDefault:"2s"`
}

// External configures the external-data dependency.
type External struct {
	// URL of the external service; empty uses the built-in simulator.
	URL string `env:"EXTERNAL_SERVICE_URL" secret:"url"`
	// Timeout bounds one call; a timeout counts as a failure.
	Timeout time.Duration `env:"EXTERNAL_TIMEOUT" envDefault:"2s"`
	// FailureRate of the simulator, 0..1.
	FailureRate float64 `env:"EXTERNAL_FAILURE_RATE" envDefault:"0.5"`
	// Latency of the simulator.
	Latency time.Duration `env:"EXTERNAL_LATENCY" envDefault:"0s"`
}

// Circuit configures the breaker around the external service.
type Circuit struct {
	// FailureThreshold errors (each within ResetTimeout of the previous) open it.
	FailureThreshold int `env:"CIRCUIT_FAILURE_THRESHOLD" envDefault:"3"`
	// SuccessThreshold successful probes close it.
	SuccessThreshold int `env:"CIRCUIT_SUCCESS_THRESHOLD" envDefault:"1"`
	// ResetTimeout is both the error window and the open period.
	ResetTimeout time.Duration `env:"CIRCUIT_RESET_TIMEOUT" envDefault:"30s"`
}

// Load reads the configuration from environ (the process environment when
// nil) and validates it. The error names the offending variable.
func Load(environ map[string]string) (Config, error) {
	var c Config
	if err := config.Load(&c, environ); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// Validate reports the first invalid setting, naming its variable.
func (c Config) Validate() error {
	if err := c.Redis.Validate(); err != nil {
		return err
	}
	var cs config.Checks
	check := cs.Check
	check(c.Port > 0 && c.Port < 65536, "PORT: must be 1..65535, got %d", c.Port)
	cs.Stream(c.StreamKey, c.Partitions)
	check(c.BucketRetention >= time.Minute, "BUCKET_RETENTION: must be >= 1m, got %s", c.BucketRetention)
	check(c.Ingest.MaxBatch >= 1, "INGEST_MAX_BATCH: must be >= 1, got %d", c.Ingest.MaxBatch)
	check(c.Ingest.MaxBodyBytes >= 1024, "INGEST_MAX_BODY_BYTES: must be >= 1024, got %d", c.Ingest.MaxBodyBytes)
	check(!math.IsNaN(c.Ingest.MaxAbsValue) && !math.IsInf(c.Ingest.MaxAbsValue, 0) && c.Ingest.MaxAbsValue > 0,
		"INGEST_MAX_ABS_VALUE: must be a finite number > 0, got %v", c.Ingest.MaxAbsValue)
	check(c.Ingest.MaxFuture > 0, "INGEST_MAX_FUTURE: must be > 0, got %s", c.Ingest.MaxFuture)
	check(c.Ingest.IdempotencyTTL >= time.Second, "IDEMPOTENCY_TTL: must be >= 1s, got %s", c.Ingest.IdempotencyTTL)
	check(c.Ingest.MaxTypes >= 1, "MAX_TYPES: must be >= 1, got %d", c.Ingest.MaxTypes)
	check(c.RateLimit.Max >= 1, "RATE_LIMIT_MAX: must be >= 1, got %d", c.RateLimit.Max)
	check(c.RateLimit.Window >= time.Second, "RATE_LIMIT_WINDOW: must be >= 1s, got %s", c.RateLimit.Window)
	_, err := c.RateLimit.Prefixes()
	cs.Add(err)
	check(c.Cache.TTL > 0, "CACHE_TTL: must be > 0, got %s", c.Cache.TTL)
	check(c.Cache.PastTTL > 0, "CACHE_PAST_TTL: must be > 0, got %s", c.Cache.PastTTL)
	check(c.Cache.StaleMax >= 0, "CACHE_STALE_MAX: must be >= 0, got %s", c.Cache.StaleMax)
	check(c.Cache.MaxEntries >= 1, "CACHE_MAX_ENTRIES: must be >= 1, got %d", c.Cache.MaxEntries)
	check(c.Cache.MaxBytes >= 1, "CACHE_MAX_BYTES: must be > 0, got %d", int64(c.Cache.MaxBytes))
	check(c.Cache.ReadTimeout > 0, "CACHE_READ_TIMEOUT: must be > 0, got %s", c.Cache.ReadTimeout)
	check(c.External.Timeout > 0, "EXTERNAL_TIMEOUT: must be > 0, got %s", c.External.Timeout)
	check(c.External.FailureRate >= 0 && c.External.FailureRate <= 1, "EXTERNAL_FAILURE_RATE: must be 0..1, got %v", c.External.FailureRate)
	check(c.External.Latency >= 0, "EXTERNAL_LATENCY: must be >= 0, got %s", c.External.Latency)
	check(c.Circuit.FailureThreshold >= 1, "CIRCUIT_FAILURE_THRESHOLD: must be >= 1, got %d", c.Circuit.FailureThreshold)
	check(c.Circuit.SuccessThreshold >= 1, "CIRCUIT_SUCCESS_THRESHOLD: must be >= 1, got %d", c.Circuit.SuccessThreshold)
	check(c.Circuit.ResetTimeout > 0, "CIRCUIT_RESET_TIMEOUT: must be > 0, got %s", c.Circuit.ResetTimeout)
	check(c.External.Timeout < c.Circuit.ResetTimeout,
		"EXTERNAL_TIMEOUT: must be shorter than CIRCUIT_RESET_TIMEOUT (%s), got %s", c.Circuit.ResetTimeout, c.External.Timeout)
	check(c.ShutdownTimeout > 0, "SHUTDOWN_TIMEOUT: must be > 0, got %s", c.ShutdownTimeout)
	check(c.ConsumerGroup != "" && !strings.ContainsAny(c.ConsumerGroup, " \t\r\n"), "CONSUMER_GROUP: must be non-empty without spaces, got %q", c.ConsumerGroup)
	check(c.SSEMaxStreams >= 1, "SSE_MAX_STREAMS: must be >= 1, got %d", c.SSEMaxStreams)
	cs.LogLevel(c.LogLevel)
	keys, err := c.Auth.Load()
	cs.Add(err)
	check(err != nil || !c.Auth.Reads || keys.Len() > 0, "AUTH_READS: true needs keys in API_KEYS or API_KEYS_FILE, none are configured")
	return cs.Err()
}

// Prefixes parses TRUSTED_PROXIES.
func (r RateLimit) Prefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range r.TrustedProxies {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("TRUSTED_PROXIES: %q is not a CIDR: %w", s, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Describe renders the effective configuration for the start-up log.
func (c Config) Describe() []any { return config.Describe(&c) }

// ByteSize is a number of bytes read from a plain number ("1048576") or one
// with a binary suffix ("512KiB", "64MiB", "1GiB"); it must be > 0.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}

// UnmarshalText parses s as described on ByteSize (the env loader calls it).
func (b *ByteSize) UnmarshalText(s []byte) error {
	text := strings.TrimSpace(string(s))
	mult := int64(1)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(text, u.suffix); ok {
			text, mult = n, u.mult
			break
		}
	}
	if strings.HasPrefix(text, "-") {
		return errors.New("must be > 0")
	}
	if text == "" || strings.Trim(text, "0123456789") != "" {
		return errors.New(`not a size: use a number of bytes, e.g. "1048576", or one with KiB, MiB or GiB, e.g. "64MiB"`)
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return errors.New("too large")
	}
	if n == 0 {
		return errors.New("must be > 0")
	}
	*b = ByteSize(n * mult)
	return nil
}

// String renders b with the largest suffix that divides it exactly, as
// UnmarshalText reads it back.
func (b ByteSize) String() string {
	for _, u := range byteUnits {
		if b > 0 && int64(b)%u.mult == 0 {
			return strconv.FormatInt(int64(b)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}
