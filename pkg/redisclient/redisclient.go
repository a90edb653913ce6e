// Package redisclient builds the go-redis client both services use from
// REDIS_URL, with the timeouts and retry policy the design requires.
//
// go-redis retries a command up to 3 times by default, also after a read
// timeout, so a timed-out XADD could be stored twice. We turn retries off
// (MaxRetries -1): a failed write becomes a 503 and the client decides.
//
// With REDIS_CLUSTER=true the same settings build a go-redis cluster client
// (REDIS_URL then names one or more seed nodes). go-redis counts MOVED/ASK
// redirects and transport retries (EOF, read timeout, a pipeline re-sent to
// another node) against one budget, MaxRedirects, so a budget for redirects
// is also a budget for blind re-sends of a script that may have run. We set
// it to none: a redirect comes back as an error (a 503 to the client), and
// go-redis reloads the slot map in the background, so the next call goes to
// the right node. Redirects only happen while slots move (resharding,
// failover); docs/operations.md says what that costs.
package redisclient

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilientanalytics/ra/pkg/config"
)

// Config is the Redis connection configuration shared by every service.
type Config struct {
	// URL is redis://[user:password@]host:port[/db] or rediss:// for TLS.
	// In cluster mode it names the seed nodes in go-redis' cluster form,
	// redis://[user:password@]h1:p1?addr=h2:p2&addr=h3:p3 (no db).
	URL string `env:"REDIS_URL" envDefault:"redis://localhost:6379" secret:"url"`
	// Cluster connects to a Redis Cluster: the slot map is read from the
	// seed nodes of URL and every key is sent to the node owning its slot.
	Cluster bool `env:"REDIS_CLUSTER" envDefault:"false"`
	// DialTimeout bounds connecting to Redis.
	DialTimeout time.Duration `env:"REDIS_DIAL_TIMEOUT" envDefault:"1s"`
	// ReadTimeout bounds waiting for one reply (blocking commands get their
	// BLOCK time on top, as go-redis does).
	ReadTimeout time.Duration `env:"REDIS_READ_TIMEOUT" envDefault:"1s"`
	// WriteTimeout bounds sending one command.
	WriteTimeout time.Duration `env:"REDIS_WRITE_TIMEOUT" envDefault:"1s"`
	// PoolSize is the connection pool size; 0 keeps go-redis' default
	// (10 per CPU).
	PoolSize int `env:"REDIS_POOL_SIZE" envDefault:"0"`
}

// Validate reports the first invalid setting, naming its variable.
func (c Config) Validate() error {
	if c.Cluster {
		if _, err := redis.ParseClusterURL(c.URL); err != nil {
			return fmt.Errorf("REDIS_URL: not a cluster URL (REDIS_CLUSTER=true): %w", err)
		}
	} else if _, err := redis.ParseURL(c.URL); err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	for name, d := range map[string]time.Duration{
		"REDIS_DIAL_TIMEOUT": c.DialTimeout, "REDIS_READ_TIMEOUT": c.ReadTimeout, "REDIS_WRITE_TIMEOUT": c.WriteTimeout,
	} {
		if d <= 0 {
			return fmt.Errorf("%s: must be > 0, got %s", name, d)
		}
	}
	if c.PoolSize < 0 {
		return fmt.Errorf("REDIS_POOL_SIZE: must be >= 0, got %d", c.PoolSize)
	}
	return nil
}

// Options turns c into go-redis options: no retries, context deadlines
// honoured, short timeouts.
func (c Config) Options() (*redis.Options, error) {
	opt, err := redis.ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("parse REDIS_URL: %w", err)
	}
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true
	opt.DialTimeout = c.DialTimeout
	opt.ReadTimeout = c.ReadTimeout
	opt.WriteTimeout = c.WriteTimeout
	// go-redis dials up to 5 times per connection by default; against an
	// unreachable host that is 5 dial timeouts before a 503. One attempt
	// keeps "503 within a few seconds" true; the next request dials again.
	opt.DialerRetries = 1
	if c.PoolSize > 0 {
		opt.PoolSize = c.PoolSize
	}
	return opt, nil
}

// ClusterOptions turns c into go-redis cluster options with the same policy
// as Options, applied to every node's client, and no redirects or re-sends
// (see the package comment).
func (c Config) ClusterOptions() (*redis.ClusterOptions, error) {
	opt, err := redis.ParseClusterURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("parse REDIS_URL as a cluster URL: %w", err)
	}
	opt.MaxRetries = -1
	opt.MaxRedirects = -1 // go-redis: -1 means none (0 means its default, 3)
	opt.ContextTimeoutEnabled = true
	opt.DialTimeout = c.DialTimeout
	opt.ReadTimeout = c.ReadTimeout
	opt.WriteTimeout = c.WriteTimeout
	opt.DialerRetries = 1
	if c.PoolSize > 0 {
		opt.PoolSize = c.PoolSize // per node
	}
	return opt, nil
}

// New returns a client for c: a cluster client when c.Cluster is set, else
// a single-node client. It does not connect; the first command does.
func New(c Config) (redis.UniversalClient, error) {
	if c.Cluster {
		opt, err := c.ClusterOptions()
		if err != nil {
			return nil, err
		}
		return redis.NewClusterClient(opt), nil
	}
	opt, err := c.Options()
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opt), nil
}

// Redact masks the password in a Redis URL for logging; it is
// config.RedactURL, the redactor behind `secret:"url"` fields.
func Redact(rawURL string) string { return config.RedactURL(rawURL) }
