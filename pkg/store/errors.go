package store

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
)

var (
	// ErrUnavailable means Redis could not be used: a read got no answer,
	// or a write certainly did not run (no connection could be had, or
	// Redis refused the command before running it). Retrying a write that
	// failed with it cannot store anything twice.
	ErrUnavailable = errors.New("metrics store unavailable")
	// ErrOutcomeUnknown means a write was sent and no reply came (a read
	// timeout, a connection reset after the write, the caller's context
	// ending while the call was in flight): Redis may have run it or not.
	// Only a retry carrying the same Idempotency-Key is safe.
	ErrOutcomeUnknown = errors.New("metrics store write outcome unknown")
)

// refusedBeforeRun are the error replies with which Redis rejects a
// command without running it: loading its data, out of memory, a replica
// or a cluster that cannot take writes, a slot on another node, a refused
// connection setup. (NOSCRIPT is one too, but AppendMany re-sends it.)
var refusedBeforeRun = []string{
	"LOADING", "OOM", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN",
	"MOVED", "ASK", "CROSSSLOT", "NOSCRIPT", "BUSY", "MISCONF", "NOREPLICAS",
	"NOAUTH", "WRONGPASS", "NOPERM", "ERR max number of clients reached",
}

// classifyWrite wraps err, the failure of a write's script call, in
// ErrUnavailable when the write certainly did not run and in
// ErrOutcomeUnknown otherwise. go-redis runs a command as: get a pooled
// connection (dialing a new one when needed), write, read the reply. Only
// the first step and a refusal from Redis prove that nothing ran; an error
// while writing may follow a partial send of a pipeline, and an error
// while reading (timeout, EOF, reset) follows a complete one.
func classifyWrite(err error) error {
	if err == nil {
		return nil
	}
	if writeNotRun(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
}

// writeNotRun reports whether err proves the command never ran.
func writeNotRun(err error) bool {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		for _, p := range refusedBeforeRun {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		// Any other error reply is the script's own redis.error_reply:
		// append.lua checks every argument before its first write, so
		// nothing ran. A runtime fault ("... script: <sha>, on
		// @user_script:<line>.") may follow a write, and is unknown.
		return !strings.Contains(msg, "@user_script")
	}
	switch {
	case errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted), errors.Is(err, redis.ErrClosed):
		return true // no connection was handed out
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return false // the reply was cut off
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op == "dial"
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	// A bare context error is most often go-redis giving up while
	// waiting for a pooled connection (with ContextTimeoutEnabled a
	// deadline reached while waiting for the reply is a net timeout), but
	// it cannot prove where it arose: unknown, like everything else.
	return false
}
