package config

import (
	"fmt"
	"strings"
)

// Checks collects validation failures of a service's configuration; each
// message starts with the variable's name. Err returns the first, so a
// service stops with one clear line.
type Checks struct {
	errs []error
}

// Check records the message when ok is false.
func (c *Checks) Check(ok bool, format string, args ...any) {
	if !ok {
		c.errs = append(c.errs, fmt.Errorf(format, args...))
	}
}

// Add records err when it is not nil.
func (c *Checks) Add(err error) {
	if err != nil {
		c.errs = append(c.errs, err)
	}
}

// Err is the first recorded failure, or nil.
func (c *Checks) Err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return c.errs[0]
}

// Stream checks the settings every service shares about the key family:
// STREAM_KEY (it becomes part of a {hash tag}, so no braces) and
// STREAM_PARTITIONS.
func (c *Checks) Stream(key string, partitions int) {
	c.Check(key != "" && !strings.ContainsAny(key, "{} "), "STREAM_KEY: must be non-empty without braces or spaces, got %q", key)
	c.Check(partitions >= 1 && partitions <= 1024, "STREAM_PARTITIONS: must be 1..1024, got %d", partitions)
}

// LogLevel checks LOG_LEVEL.
func (c *Checks) LogLevel(level string) {
	switch level {
	case "debug", "info", "warn", "error":
	default:
		c.Add(fmt.Errorf("LOG_LEVEL: must be debug, info, warn or error, got %q", level))
	}
}
