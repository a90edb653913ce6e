package store

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/resilientanalytics/ra/pkg/metric"
)

// The stream entry codec: what the api appends and the aggregator reads.
// Only this file knows the field names; the scripts receive them as
// arguments.
const (
	entryType      = "type"
	entryValue     = "value"
	entryTimestamp = "ts"
)

// entryFieldNames are the entry's field names, in the order
// appendEntryValues appends their values. A writer of many entries sends
// the names once and the values per entry (append.lua does).
var entryFieldNames = []string{entryType, entryValue, entryTimestamp}

// maxExactMicros is 2^53: timestamps at or above it lose precision as Lua
// numbers, so such entries do not decode.
const maxExactMicros = 1 << 53

// ErrBadEntry is the cause of every stream entry that does not decode; the
// aggregator dead-letters such entries.
var ErrBadEntry = errors.New("stream entry is not a valid metric")

// Entry is one stream entry as Redis returned it.
type Entry struct {
	// ID is the stream entry id, "<ms>-<seq>".
	ID string
	// Values are the entry's fields; nil for a pending entry that was
	// deleted from the stream (XREADGROUP and XCLAIM return it without
	// fields).
	Values map[string]any
}

// appendEntryValues appends m's entry values to dst, in entryFieldNames
// order.
func appendEntryValues(dst []any, m metric.Metric) []any {
	return append(dst, m.Type, metric.FormatValue(m.Value), strconv.FormatInt(m.Micros(), 10))
}

// EntryFields are m's entry fields (name, value, name, value...) in the
// order XADD takes them: what the api stores for m.
func EntryFields(m metric.Metric) []any {
	vals := appendEntryValues(make([]any, 0, len(entryFieldNames)), m)
	out := make([]any, 0, 2*len(entryFieldNames))
	for i, name := range entryFieldNames {
		out = append(out, name, vals[i])
	}
	return out
}

// DecodeEntry decodes an entry's fields (as go-redis returns them). Errors
// wrap ErrBadEntry and say which field is wrong.
func DecodeEntry(values map[string]any) (metric.Metric, error) {
	if values == nil {
		return metric.Metric{}, fmt.Errorf("%w: entry no longer in the stream (deleted)", ErrBadEntry)
	}
	str := func(name string) (string, error) {
		v, ok := values[name]
		if !ok {
			return "", fmt.Errorf("%w: missing field %q", ErrBadEntry, name)
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%w: field %q is %T, not a string", ErrBadEntry, name, v)
		}
		return s, nil
	}
	typ, err := str(entryType)
	if err != nil {
		return metric.Metric{}, err
	}
	if msg := metric.ValidType(typ); msg != "" {
		return metric.Metric{}, fmt.Errorf("%w: type %s", ErrBadEntry, msg)
	}
	vs, err := str(entryValue)
	if err != nil {
		return metric.Metric{}, err
	}
	v, err := strconv.ParseFloat(vs, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return metric.Metric{}, fmt.Errorf("%w: value %q is not a finite number", ErrBadEntry, vs)
	}
	ts, err := str(entryTimestamp)
	if err != nil {
		return metric.Metric{}, err
	}
	us, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || us < 0 || us >= maxExactMicros {
		return metric.Metric{}, fmt.Errorf("%w: ts %q is not Unix microseconds in [0, 2^53)", ErrBadEntry, ts)
	}
	return metric.Metric{Timestamp: time.UnixMicro(us).UTC(), Value: v, Type: typ}, nil
}
