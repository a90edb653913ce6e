package metric

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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

// Defaults for the zero fields of Limits.
const (
	DefaultMaxBatch    = 1000
	DefaultMaxAbsValue = 1e18
	DefaultMaxFuture   = 10 * time.Minute
)

// Limits bound what a Decoder accepts. Zero fields take the defaults.
type Limits struct {
	// MaxBatch is the most metrics an array may carry (INGEST_MAX_BATCH).
	MaxBatch int
	// MaxAbsValue bounds |value| (INGEST_MAX_ABS_VALUE). The default 1e18
	// keeps any sum of values that fits in the store finite: 2^53 such
	// values still sum below 1e34, far from float64's limit.
	MaxAbsValue float64
	// MaxFuture is how far ahead of Now a timestamp may be
	// (INGEST_MAX_FUTURE): a clock that runs ahead is tolerated, a year
	// 2200 that would pin last_timestamp forever is not.
	MaxFuture time.Duration
	// Now is the clock MaxFuture is measured from. Required: the decoder
	// reads no clock of its own, so tests can pin it.
	Now func() time.Time
}

// Decoder reads request bodies under fixed Limits. It is safe for
// concurrent use.
type Decoder struct {
	limits Limits
	// The bound messages are built once: a rejected value or timestamp
	// then costs no formatting.
	valueMsg, futureMsg string
}

// NewDecoder fills l's defaults and checks them.
func NewDecoder(l Limits) (*Decoder, error) {
	if l.MaxBatch == 0 {
		l.MaxBatch = DefaultMaxBatch
	}
	if l.MaxAbsValue == 0 {
		l.MaxAbsValue = DefaultMaxAbsValue
	}
	if l.MaxFuture == 0 {
		l.MaxFuture = DefaultMaxFuture
	}
	switch {
	case l.MaxBatch < 0:
		return nil, fmt.Errorf("metric: MaxBatch must be >= 1, got %d", l.MaxBatch)
	case math.IsNaN(l.MaxAbsValue) || math.IsInf(l.MaxAbsValue, 0) || l.MaxAbsValue < 0:
		return nil, fmt.Errorf("metric: MaxAbsValue must be a finite number > 0, got %v", l.MaxAbsValue)
	case l.MaxFuture < 0:
		return nil, fmt.Errorf("metric: MaxFuture must be >= 0, got %s", l.MaxFuture)
	case l.Now == nil:
		return nil, errors.New("metric: Limits.Now is required")
	}
	return &Decoder{
		limits:    l,
		valueMsg:  "must be within ±" + strconv.FormatFloat(l.MaxAbsValue, 'g', -1, 64) + " (INGEST_MAX_ABS_VALUE)",
		futureMsg: "must not be more than " + l.MaxFuture.String() + " ahead of the server's clock (INGEST_MAX_FUTURE)",
	}, nil
}

// Limits returns the limits in force, defaults filled.
func (d *Decoder) Limits() Limits { return d.limits }

// bounds are one Decode call's checks: the clock is read once per body, so
// every item of a batch is judged against the same instant.
type bounds struct {
	d      *Decoder
	latest time.Time
}

// Decode reads a request body: one metric object, or an array of at most
// MaxBatch of them. batch reports whether the body was an array. Errors are
// *SyntaxError, *ValidationError (listing every invalid field),
// *BatchTooLargeError or ErrEmptyBatch.
func (d *Decoder) Decode(body []byte) (metrics []Metric, batch bool, err error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, false, &SyntaxError{Msg: "body is empty: send a metric object or an array of them"}
	}
	bd := bounds{d: d, latest: d.limits.Now().Add(d.limits.MaxFuture)}
	switch trimmed[0] {
	case '{':
		m, fes := bd.decodeItem(trimmed, "")
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
		if len(items) > d.limits.MaxBatch {
			return nil, true, &BatchTooLargeError{Items: len(items), Max: d.limits.MaxBatch}
		}
		metrics = make([]Metric, len(items))
		var all []FieldError
		for i, raw := range items {
			prefix := "[" + strconv.Itoa(i) + "]"
			m, fes := bd.decodeItem(raw, prefix)
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
	// dup names members that appear more than once (the general path
	// only: scanSimple refuses such objects).
	dup []string
}

// decodeItem validates one object. prefix is "" for a single metric and
// "[i]" in a batch.
func (bd *bounds) decodeItem(raw []byte, prefix string) (Metric, []FieldError) {
	if it, ok := scanSimple(raw); ok {
		return bd.validate(it, prefix)
	}
	return bd.decodeItemGeneral(raw, prefix)
}

// decodeItemGeneral handles anything unusual (escapes, other keys,
// duplicates, nested values, bad syntax) with encoding/json, which also
// words the syntax errors.
func (bd *bounds) decodeItemGeneral(raw []byte, prefix string) (Metric, []FieldError) {
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
	it.dup = duplicateMembers(raw, len(fields))
	return bd.validate(it, prefix)
}

// duplicateMembers lists the member names of the valid JSON object raw
// that occur more than once, compared after unescaping ("valu\u0065" is
// "value"), as RFC 8259 section 4 leaves their meaning undefined and
// encoding/json would silently keep the last. distinct (how many names the
// object has) sizes the walk's set.
func duplicateMembers(raw []byte, distinct int) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // the opening brace
		return nil
	}
	seen := make(map[string]int, distinct)
	var dup []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return dup
		}
		k, _ := tok.(string)
		if seen[k]++; seen[k] == 2 {
			dup = append(dup, k)
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return dup
		}
	}
	return dup
}

func (bd *bounds) validate(it item, prefix string) (Metric, []FieldError) {
	name := func(f string) string {
		if prefix == "" {
			return f
		}
		return prefix + "." + f
	}
	var m Metric
	var errs []FieldError
	add := func(field, msg string) { errs = append(errs, FieldError{Field: name(field), Message: msg}) }
	dup := func(field string) bool {
		for _, d := range it.dup {
			if d == field {
				add(field, dupMsg)
				return true
			}
		}
		return false
	}

	switch {
	case dup("timestamp"):
	case it.timestamp == nil:
		add("timestamp", "is required")
	default:
		if ts, msg := bd.parseTimestamp(it.timestamp); msg != "" {
			add("timestamp", msg)
		} else {
			m.Timestamp = ts
		}
	}
	switch {
	case dup("value"):
	case it.value == nil:
		add("value", "is required")
	default:
		if f, msg := bd.parseValue(it.value); msg != "" {
			add("value", msg)
		} else {
			m.Value = f
		}
	}
	switch {
	case dup("type"):
	case it.typ == nil:
		add("type", "is required")
	default:
		if s, ok := unquote(it.typ); !ok {
			add("type", "must be a string")
		} else if msg := ValidType(s); msg != "" {
			add("type", msg)
		} else {
			m.Type = s
		}
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

// dupMsg is the error of a member that appears twice; which of its values
// the client meant is unknowable, so neither is judged.
const dupMsg = "duplicate member: each may appear only once"

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

func (bd *bounds) parseValue(raw json.RawMessage) (float64, string) {
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, "must be a JSON number (not a string, null or boolean)"
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, "must be a finite number"
	}
	if math.Abs(f) > bd.d.limits.MaxAbsValue {
		return 0, bd.d.valueMsg
	}
	return f, ""
}

func (bd *bounds) parseTimestamp(raw json.RawMessage) (time.Time, string) {
	s, ok := unquote(raw)
	if !ok {
		return time.Time{}, "must be an RFC 3339 string, e.g. 2026-02-15T10:00:00Z"
	}
	t, err := ParseTime(s)
	if err != nil {
		return time.Time{}, "must be an RFC 3339 time: " + err.Error()
	}
	if t.Before(minTimestamp) {
		return time.Time{}, "must not be before 1970-01-01T00:00:00Z"
	}
	if !t.Before(maxTimestamp) {
		return time.Time{}, "must be before " + maxTimestamp.Format(time.RFC3339)
	}
	if t.After(bd.latest) {
		return time.Time{}, bd.d.futureMsg
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
