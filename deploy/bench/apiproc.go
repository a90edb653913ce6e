package main

import (
	"context"
	"maps"
	"path/filepath"
	"strings"
)

// apiEnv is the environment every api the harness starts shares: the
// limiter on but never reached, clients keyed by X-Forwarded-For from
// loopback, reads cached.
func apiEnv(redisURL, port string) map[string]string {
	return map[string]string{
		"REDIS_URL": redisURL, "PORT": port, "RATE_LIMIT_MAX": "1000000000", "RATE_LIMIT_WINDOW": "3600",
		"TRUSTED_PROXIES": "127.0.0.1/32", "CACHE_TTL": "60s",
	}
}

// startAPI starts binDir/api on a free port with apiEnv plus extra (which
// wins) and waits until it is healthy; it returns the process and its
// address.
func startAPI(ctx context.Context, name, binDir, redisURL string, extra map[string]string) (*proc, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	_, port, _ := strings.Cut(addr, ":")
	env := apiEnv(redisURL, port)
	maps.Copy(env, extra)
	p, err := startProc(name, filepath.Join(binDir, "api"), env)
	if err != nil {
		return nil, "", err
	}
	if err := waitHTTP(ctx, "http://"+addr+"/health"); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, addr, nil
}
