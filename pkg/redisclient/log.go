package redisclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
)

// SetLogger routes go-redis' own log lines (dial failures, pool and
// connection notices) into l as JSON records at WARN with
// "component":"go-redis", instead of go-redis' default plain-text logger on
// stderr. go-redis keeps one logger per process, so each main calls it
// once, before building clients. The command's context is handed to l, so
// a handler that reads request ids from the context sees them.
func SetLogger(l *slog.Logger) {
	if l == nil {
		return
	}
	redis.SetLogger(slogAdapter{l})
}

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	if !a.l.Enabled(ctx, slog.LevelWarn) {
		return
	}
	msg := strings.TrimSpace(strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
	a.l.LogAttrs(ctx, slog.LevelWarn, msg, slog.String("component", "go-redis"))
}

// Describe says in plain words, for a client, what is wrong with Redis
// given the error of a call: "ok" for nil, "unreachable" when no
// connection could be had or the connection broke, "unreachable: no
// answer in time" for a timeout, or what a refusing Redis said in a few
// words ("loading its data", "out of memory" ...). It never returns the
// error's text, which can carry addresses and Go internals; log that.
func Describe(err error) string {
	if err == nil {
		return "ok"
	}
	var re redis.Error
	if errors.As(err, &re) {
		prefix, _, _ := strings.Cut(re.Error(), " ")
		switch strings.ToUpper(prefix) {
		case "LOADING":
			return "refusing commands: loading its data"
		case "OOM":
			return "refusing commands: out of memory"
		case "READONLY":
			return "refusing commands: read-only replica"
		case "NOAUTH", "WRONGPASS", "NOPERM":
			return "refusing commands: authentication failed"
		case "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "MOVED", "ASK":
			return "refusing commands: cluster unavailable"
		case "BUSY":
			return "refusing commands: busy running a script"
		}
		return "refusing commands"
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return "unreachable: no answer in time"
	}
	return "unreachable"
}
