package metric

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Stream entry field names. The aggregator's apply script receives the values
// already decoded, so only this file knows them.
const (
	FieldType      = "type"
	FieldValue     = "value"
	FieldTimestamp = "ts"
)

// ErrBadEntry is the cause of every stream entry that does not decode; the
// aggregator dead-letters such entries.
var ErrBadEntry = errors.New("stream entry is not a valid metric")

// Micros is the timestamp as integer Unix microseconds, the form stored in
// the stream and the summaries.
func (m Metric) Micros() int64 { return m.Timestamp.UnixMicro() }

// FormatValue renders v with full float64 precision (shortest form that
// parses back to the same bits).
func FormatValue(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// FieldNames are the stream entry's field names, in the order AppendValues
// appends their values. A writer that sends many entries can send the names
// once and the values per entry (the api's append script does).
var FieldNames = []string{FieldType, FieldValue, FieldTimestamp}

// AppendValues appends m's stream entry values to dst, in FieldNames order.
func (m Metric) AppendValues(dst []any) []any {
	return append(dst, m.Type, FormatValue(m.Value), strconv.FormatInt(m.Micros(), 10))
}

// AppendFields appends m's stream entry fields (name, value, name, value...)
// to dst, in the order XADD takes them.
func (m Metric) AppendFields(dst []any) []any {
	vals := m.AppendValues(make([]any, 0, len(FieldNames)))
	for i, name := range FieldNames {
		dst = append(dst, name, vals[i])
	}
	return dst
}

// FromFields decodes a stream entry's fields (as go-redis returns them).
// Errors wrap ErrBadEntry and say which field is wrong.
func FromFields(fields map[string]any) (Metric, error) {
	str := func(name string) (string, error) {
		v, ok := fields[name]
		if !ok {
			return "", fmt.Errorf("%w: missing field %q", ErrBadEntry, name)
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%w: field %q is %T, not a string", ErrBadEntry, name, v)
		}
		return s, nil
	}
	typ, err := str(FieldType)
	if err != nil {
		return Metric{}, err
	}
	if msg := ValidType(typ); msg != "" {
		return Metric{}, fmt.Errorf("%w: type %s", ErrBadEntry, msg)
	}
	vs, err := str(FieldValue)
	if err != nil {
		return Metric{}, err
	}
	v, err := strconv.ParseFloat(vs, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return Metric{}, fmt.Errorf("%w: value %q is not a finite number", ErrBadEntry, vs)
	}
	ts, err := str(FieldTimestamp)
	if err != nil {
		return Metric{}, err
	}
	us, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || us < 0 || us >= 1<<53 {
		return Metric{}, fmt.Errorf("%w: ts %q is not Unix microseconds in [0, 2^53)", ErrBadEntry, ts)
	}
	return Metric{Timestamp: time.UnixMicro(us).UTC(), Value: v, Type: typ}, nil
}

// FormatMicros renders Unix microseconds as an RFC 3339 UTC time.
func FormatMicros(us int64) string {
	return time.UnixMicro(us).UTC().Format(time.RFC3339Nano)
}
