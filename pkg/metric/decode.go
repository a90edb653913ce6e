package metric

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"
)

// minTimestamp is the earliest accepted timestamp. Timestamps travel as Unix
// microseconds and are compared as Lua numbers (float64); before 1970 they
// would be negative, which no client of a live metrics API sends on purpose.
var minTimestamp = time.Unix(0, 0).UTC()

// maxTimestamp is 2^53 microseconds (mid-2255): the largest Unix
// microsecond count a Lua number (float64) holds exactly.
var maxTimestamp = time.UnixMicro(1 << 53).UTC()

// localLayout is RFC 3339 without a zone; such a time is read as UTC.
const localLayout = "2006-01-02T15:04:05.999999999"

// Decode reads a request body: one metric object, or an array of at most
// maxBatch of them (maxBatch <= 0 means no limit). batch reports whether the
// body was an array. Errors are *SyntaxError, *ValidationError (listing every
// invalid field), *BatchTooLargeError or ErrEmptyBatch.
func Decode(body []byte, maxBatch int) (metrics []Metric, batch bool, err error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, false, &SyntaxError{Msg: "body is empty: send a metric object or an array of them"}
	}
	switch trimmed[0] {
	case '{':
		m, fes := decodeItem(trimmed, "")
		if fes != nil {
			if se, ok := fes[0].syntax(); ok {
				return nil, false, se
			}
			return nil, false, &ValidationError{Errors: fes}
		}
		return []Metric{m}, false, nil
	case '[':
		items, fast := splitSimpleArray(trimmed)
		if !fast {
			if err := json.Unmarshal(trimmed, &items); err != nil {
				return nil, true, syntaxError(err)
			}
		}
		if len(items) == 0 {
			return nil, true, ErrEmptyBatch
		}
		if maxBatch > 0 && len(items) > maxBatch {
			return nil, true, &BatchTooLargeError{Items: len(items), Max: maxBatch}
		}
		metrics = make([]Metric, len(items))
		var all []FieldError
		for i, raw := range items {
			prefix := "[" + strconv.Itoa(i) + "]"
			m, fes := decodeItem(raw, prefix)
			if fes != nil {
				if fes[0].Field == prefix && fes[0].Message == "" {
					fes[0].Message = "must be a metric object"
				}
				all = append(all, fes...)
				continue
			}
			metrics[i] = m
		}
		if all != nil {
			if fast {
				// The fast split does not check an item's syntax: let
				// encoding/json word a malformed body as it would have.
				var check []json.RawMessage
				if err := json.Unmarshal(trimmed, &check); err != nil {
					return nil, true, syntaxError(err)
				}
			}
			return nil, true, &ValidationError{Errors: all}
		}
		return metrics, true, nil
	default:
		if !json.Valid(trimmed) {
			return nil, false, &SyntaxError{Msg: "body is not valid JSON"}
		}
		return nil, false, &SyntaxError{Msg: "body must be a metric object or an array of them"}
	}
}

// syntaxMarker flags a FieldError that is really a whole-body syntax error
// (only possible for a single object).
const syntaxMarker = "\x00syntax"

func (fe FieldError) syntax() (*SyntaxError, bool) {
	if fe.Field != syntaxMarker {
		return nil, false
	}
	return &SyntaxError{Msg: fe.Message}, true
}

func syntaxError(err error) *SyntaxError {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &SyntaxError{Msg: "invalid JSON at byte " + strconv.FormatInt(se.Offset, 10) + ": " + se.Error()}
	}
	var ue *json.UnmarshalTypeError
	if errors.As(err, &ue) {
		return &SyntaxError{Msg: "body must be a metric object or an array of them"}
	}
	return &SyntaxError{Msg: err.Error()}
}

// item is one object's members, as found by scanSimple or the general path.
type item struct {
	timestamp, value, typ []byte // raw JSON values; nil when absent
	unknown               []string
}

// decodeItem validates one object. prefix is "" for a single metric and
// "[i]" in a batch.
func decodeItem(raw []byte, prefix string) (Metric, []FieldError) {
	if it, ok := scanSimple(raw); ok {
		return it.validate(prefix)
	}
	return decodeItemGeneral(raw, prefix)
}

// decodeItemGeneral handles anything unusual (escapes, other keys,
// duplicates, nested values, bad syntax) with encoding/json, which also
// words the syntax errors.
func decodeItemGeneral(raw []byte, prefix string) (Metric, []FieldError) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		if prefix == "" {
			return Metric{}, []FieldError{{Field: syntaxMarker, Message: syntaxError(err).Msg}}
		}
		return Metric{}, []FieldError{{Field: prefix}}
	}
	it := item{timestamp: fields["timestamp"], value: fields["value"], typ: fields["type"]}
	for k := range fields {
		if k != "timestamp" && k != "value" && k != "type" {
			it.unknown = append(it.unknown, k)
		}
	}
	return it.validate(prefix)
}

func (it item) validate(prefix string) (Metric, []FieldError) {
	name := func(f string) string {
		if prefix == "" {
			return f
		}
		return prefix + "." + f
	}
	var m Metric
	var errs []FieldError
	add := func(field, msg string) { errs = append(errs, FieldError{Field: name(field), Message: msg}) }

	if it.timestamp == nil {
		add("timestamp", "is required")
	} else if ts, msg := parseTimestamp(it.timestamp); msg != "" {
		add("timestamp", msg)
	} else {
		m.Timestamp = ts
	}
	if it.value == nil {
		add("value", "is required")
	} else if f, msg := parseValue(it.value); msg != "" {
		add("value", msg)
	} else {
		m.Value = f
	}
	if it.typ == nil {
		add("type", "is required")
	} else if s, ok := unquote(it.typ); !ok {
		add("type", "must be a string")
	} else if msg := ValidType(s); msg != "" {
		add("type", msg)
	} else {
		m.Type = s
	}
	for _, k := range it.unknown {
		add(k, "unknown field (allowed: timestamp, value, type)")
	}
	if errs != nil {
		sortFieldErrors(errs)
		return Metric{}, errs
	}
	return m, nil
}

// unquote reads a JSON string value. Strings without escapes (all valid
// metrics) are sliced rather than decoded.
func unquote(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 && raw[len(raw)-1] == '"' {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// scanSimple reads the common case fast: a flat object whose members are
// exactly timestamp, value and type, once each, with plain keys, string
// values without escapes or control characters, or a JSON number. It
// reports ok=false for anything else, and the caller takes the general
// path; so it may be strict, but never wrong about what it accepts.
func scanSimple(b []byte) (it item, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return item{}, false
	}
	i++
	var seen uint8
	for {
		i = skipSpace(b, i)
		end := plainString(b, i)
		if end < 0 {
			return item{}, false
		}
		key := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return item{}, false
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return item{}, false
		}
		start := i
		if b[i] == '"' {
			if i = plainString(b, i); i < 0 {
				return item{}, false
			}
		} else if n := numberLen(b[i:]); n > 0 {
			i += n
		} else {
			return item{}, false
		}
		v := b[start:i:i]
		switch string(key) {
		case "timestamp":
			if seen&1 != 0 {
				return item{}, false
			}
			seen |= 1
			it.timestamp = v
		case "value":
			if seen&2 != 0 {
				return item{}, false
			}
			seen |= 2
			it.value = v
		case "type":
			if seen&4 != 0 {
				return item{}, false
			}
			seen |= 4
			it.typ = v
		default:
			return item{}, false
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return item{}, false
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != '}' {
			return item{}, false
		}
		i++
		break
	}
	if seen != 7 || skipSpace(b, i) != len(b) {
		return item{}, false
	}
	return it, true
}

// splitSimpleArray cuts an array of flat objects (no nested objects or
// arrays, strings without escapes) into its items without decoding them;
// decodeItem then validates each. ok=false sends the caller to
// encoding/json, which handles (and words errors for) everything else.
func splitSimpleArray(b []byte) (items []json.RawMessage, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return []json.RawMessage{}, skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '{' {
			return nil, false
		}
		start := i
		for i++; i < len(b) && b[i] != '}'; i++ {
			switch b[i] {
			case '"':
				end := plainString(b, i)
				if end < 0 {
					return nil, false
				}
				i = end - 1
			case '{', '[', ']':
				return nil, false
			}
		}
		if i >= len(b) {
			return nil, false
		}
		i++
		items = append(items, b[start:i:i])
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil, false
		}
		if b[i] == ']' {
			return items, skipSpace(b, i+1) == len(b)
		}
		if b[i] != ',' {
			return nil, false
		}
		i = skipSpace(b, i+1)
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString returns the index just past a string starting at b[i] that
// has no escapes and no control characters, or -1.
func plainString(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1
		case c == '\\' || c < 0x20:
			return -1
		}
	}
	return -1
}

// numberLen is the length of the JSON number (RFC 8259 grammar) at the
// start of b, or 0.
func numberLen(b []byte) int {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return 0
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0
		}
	}
	return i
}

func parseValue(raw json.RawMessage) (float64, string) {
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, "must be a JSON number (not a string, null or boolean)"
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, "must be a finite number"
	}
	return f, ""
}

// ParseTime reads an RFC 3339 time; one without a zone is UTC.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		var err2 error
		t, err2 = time.ParseInLocation(localLayout, s, time.UTC)
		if err2 != nil {
			return time.Time{}, err
		}
	}
	return t.UTC(), nil
}

func parseTimestamp(raw json.RawMessage) (time.Time, string) {
	s, ok := unquote(raw)
	if !ok {
		return time.Time{}, "must be an RFC 3339 string, e.g. 2026-02-15T10:00:00Z"
	}
	t, err := ParseTime(s)
	if err != nil {
		return time.Time{}, "must be an RFC 3339 time, e.g. 2026-02-15T10:00:00Z (no zone means UTC)"
	}
	if t.Before(minTimestamp) {
		return time.Time{}, "must not be before 1970-01-01T00:00:00Z"
	}
	if !t.Before(maxTimestamp) {
		return time.Time{}, "must be before " + maxTimestamp.Format(time.RFC3339)
	}
	return t.Truncate(time.Microsecond), ""
}

// sortFieldErrors orders errors by field so responses are deterministic
// (unknown fields come out of a map).
func sortFieldErrors(errs []FieldError) {
	for i := 1; i < len(errs); i++ {
		for j := i; j > 0 && errs[j].Field < errs[j-1].Field; j-- {
			errs[j], errs[j-1] = errs[j-1], errs[j]
		}
	}
}
