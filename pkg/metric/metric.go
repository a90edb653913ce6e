// Package metric is the metric schema shared by the api and the aggregator:
// decoding and validating client JSON (one object or a batch). How a metric
// is stored in Redis is package store's business.
package metric

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxTypeLen is the longest accepted metric type.
const MaxTypeLen = 100

// Metric is one validated measurement.
type Metric struct {
	// Timestamp is when the measurement was taken, in UTC with microsecond
	// precision (the precision the stream keeps).
	Timestamp time.Time
	// Value is finite.
	Value float64
	// Type matches [A-Za-z0-9_.:-]{1,100}.
	Type string
}

// FieldError names one invalid field. In a batch Field is prefixed with the
// item's index, e.g. "[3].timestamp".
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every invalid field of a request.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Field + ": " + fe.Message
	}
	return "invalid metric: " + strings.Join(parts, "; ")
}

// SyntaxError is a body that is not the JSON the API takes (malformed JSON,
// null, a scalar, an empty body).
type SyntaxError struct {
	Msg string
}

func (e *SyntaxError) Error() string { return "malformed request body: " + e.Msg }

// ErrEmptyBatch is a batch with no metrics.
var ErrEmptyBatch = errors.New("batch is empty: send at least one metric")

// BatchTooLargeError is a batch with more items than allowed.
type BatchTooLargeError struct {
	Items, Max int
}

func (e *BatchTooLargeError) Error() string {
	return fmt.Sprintf("batch of %d metrics exceeds INGEST_MAX_BATCH=%d", e.Items, e.Max)
}

// ValidType reports why t is not a valid metric type, or "" when it is.
func ValidType(t string) string {
	if t == "" {
		return "must not be empty"
	}
	if len(t) > MaxTypeLen {
		return fmt.Sprintf("must be at most %d characters", MaxTypeLen)
	}
	for i := 0; i < len(t); i++ {
		if !typeChar(t[i]) {
			return "may only contain letters, digits and _ . : -"
		}
	}
	return ""
}

func typeChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == ':' || c == '-'
}

// Micros is the timestamp as integer Unix microseconds, the form stored in
// the stream and the summaries.
func (m Metric) Micros() int64 { return m.Timestamp.UnixMicro() }

// FormatValue renders v with full float64 precision (shortest form that
// parses back to the same bits).
func FormatValue(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// FormatMicros renders Unix microseconds as an RFC 3339 UTC time.
func FormatMicros(us int64) string {
	return time.UnixMicro(us).UTC().Format(time.RFC3339Nano)
}
