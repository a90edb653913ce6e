// Package window parses and normalises the time range of the windowed
// summary and the series: from/to (RFC 3339, half-open [from, to)) or
// window (a Go duration ending now), and the series' step. It validates
// everything a client can get wrong and names the offending query
// parameter, so handlers answer 400 before touching Redis.
//
// Normalisation (buckets are whole minutes, so ranges are too):
//
//   - from is rounded down and to is rounded up to a whole minute (for a
//     series: to a whole step, counted from the Unix epoch), so the range
//     covers every minute the requested one touches. The normalised bounds
//     are what the response echoes and what the cache is keyed by.
//   - window=W ends at the current minute's end: to = now rounded up to a
//     minute (a step), from = to − W (rounded down to a step). Every request
//     within one minute therefore shares one cache entry.
//   - The requested range must lie within the bucket retention around now:
//     from ≥ now − retention and to ≤ now + retention (the aggregator buckets
//     nothing outside that band).
package window

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/resilientanalytics/ra/pkg/metric"
)

// DefaultMaxPoints is the most points a series may have.
const DefaultMaxPoints = 1440

// ErrBadKey means a cache key was not made by Query.Key.
var ErrBadKey = errors.New("window: malformed query key")

// Kind says which endpoint a Query is for.
type Kind byte

const (
	// Summary is a windowed summary (one fold of the range).
	Summary Kind = 's'
	// Series is a series of points, one per step.
	Series Kind = 'r'
)

// Limits bound what a query may ask for.
type Limits struct {
	// Retention is BUCKET_RETENTION: no range may reach beyond it.
	Retention time.Duration
	// MaxPoints bounds (to − from) / step (default DefaultMaxPoints).
	MaxPoints int
}

// Query is a validated, normalised query.
type Query struct {
	Kind Kind
	// Type is the metric type.
	Type string
	// From and To bound the half-open range [From, To), UTC, on whole
	// minutes (whole steps for a series).
	From, To time.Time
	// Step is the series' step (a multiple of a minute); a minute for a
	// summary.
	Step time.Duration
}

// Points is the number of steps in the range.
func (q Query) Points() int { return int(q.To.Sub(q.From) / q.Step) }

// Key is the normalised query as a cache key: equal keys, equal answers.
func (q Query) Key() string {
	return string(q.Kind) + "|" + q.Type + "|" + strconv.FormatInt(q.From.UnixMicro(), 10) + "|" +
		strconv.FormatInt(q.To.UnixMicro(), 10) + "|" + strconv.FormatInt(int64(q.Step/time.Minute), 10)
}

// FromKey is the inverse of Key (the cache hands loads only the key).
func FromKey(key string) (Query, error) {
	parts := strings.Split(key, "|")
	if len(parts) != 5 || len(parts[0]) != 1 {
		return Query{}, fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	var n [3]int64
	for i := range n {
		v, err := strconv.ParseInt(parts[2+i], 10, 64)
		if err != nil {
			return Query{}, fmt.Errorf("%w: %q", ErrBadKey, key)
		}
		n[i] = v
	}
	q := Query{Kind: Kind(parts[0][0]), Type: parts[1], From: time.UnixMicro(n[0]).UTC(), To: time.UnixMicro(n[1]).UTC(),
		Step: time.Duration(n[2]) * time.Minute}
	if (q.Kind != Summary && q.Kind != Series) || q.Step <= 0 || !q.From.Before(q.To) {
		return Query{}, fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	return q, nil
}

// HasRange reports whether q asks for a range at all (from, to or
// window present): without one, GET /api/metrics/summary stays the
// all-time summary.
func HasRange(q url.Values) bool {
	return q.Has("from") || q.Has("to") || q.Has("window")
}

// ParseSummary validates a windowed summary query.
func ParseSummary(q url.Values, now time.Time, l Limits) (Query, []metric.FieldError) {
	return parse(q, now, l, Summary)
}

// ParseSeries validates a series query; step defaults to 1m.
func ParseSeries(q url.Values, now time.Time, l Limits) (Query, []metric.FieldError) {
	return parse(q, now, l, Series)
}

func parse(q url.Values, now time.Time, l Limits, kind Kind) (Query, []metric.FieldError) {
	if l.MaxPoints <= 0 {
		l.MaxPoints = DefaultMaxPoints
	}
	now = now.UTC()
	var errs []metric.FieldError
	add := func(field, msg string) { errs = append(errs, metric.FieldError{Field: field, Message: msg}) }

	out := Query{Kind: kind, Type: q.Get("type"), Step: time.Minute}
	if msg := metric.ValidType(out.Type); msg != "" {
		if out.Type == "" {
			msg = "is required"
		}
		add("type", msg)
	}
	if kind == Series && q.Has("step") {
		d, msg := minutes(q.Get("step"))
		if msg != "" {
			add("step", msg)
		} else {
			out.Step = d
		}
	}

	var from, to time.Time
	hasFrom, hasTo, hasWindow := q.Has("from"), q.Has("to"), q.Has("window")
	switch {
	case hasWindow && (hasFrom || hasTo):
		add("window", "cannot be combined with from and to: give either a window ending now or both from and to")
	case hasWindow:
		w, msg := minutes(q.Get("window"))
		if msg != "" {
			add("window", msg)
			break
		}
		if w > l.Retention {
			add("window", fmt.Sprintf("is longer than the bucket retention (BUCKET_RETENTION) of %s", l.Retention))
			break
		}
		to = now.Add(time.Minute - 1).Truncate(time.Minute)
		from = to.Add(-w)
	case hasFrom || hasTo:
		var ok bool
		if from, ok = timeParam(q, "from", add); ok {
			if t, ok2 := timeParam(q, "to", add); ok2 {
				to = t
				if !from.Before(to) {
					add("to", "must be after from (the range is half-open: [from, to))")
				}
			}
		} else {
			timeParam(q, "to", add) // report it too
		}
		if len(errs) == 0 {
			earliest, latest := now.Add(-l.Retention), now.Add(l.Retention)
			if from.Before(earliest) {
				add("from", fmt.Sprintf("is beyond the bucket retention: buckets are kept for %s (BUCKET_RETENTION), so from must be at or after %s",
					l.Retention, earliest.Format(time.RFC3339)))
			}
			if to.After(latest) {
				add("to", fmt.Sprintf("is beyond the bucket retention: no bucket exists more than %s (BUCKET_RETENTION) ahead, so to must be at or before %s",
					l.Retention, latest.Format(time.RFC3339)))
			}
		}
	default:
		add("from", "is required (with to), or give window")
	}
	if len(errs) > 0 {
		return Query{}, errs
	}

	// Round outward to whole steps since the Unix epoch.
	step := out.Step.Microseconds()
	f, t := from.UnixMicro(), to.UnixMicro()
	f -= f % step
	if r := t % step; r != 0 {
		t += step - r
	}
	out.From, out.To = time.UnixMicro(f).UTC(), time.UnixMicro(t).UTC()
	if n := out.Points(); kind == Series && n > l.MaxPoints {
		add("step", fmt.Sprintf("gives %d points; at most %d are allowed: use a larger step or a shorter range", n, l.MaxPoints))
		return Query{}, errs
	}
	return out, nil
}

// timeParam parses one RFC 3339 query parameter, reporting a missing or
// unparsable one.
func timeParam(q url.Values, name string, add func(field, msg string)) (time.Time, bool) {
	if !q.Has(name) {
		other := map[string]string{"from": "to", "to": "from"}[name]
		add(name, "is required with "+other)
		return time.Time{}, false
	}
	t, err := metric.ParseTime(q.Get(name))
	if err != nil {
		add(name, "must be an RFC 3339 time, e.g. 2026-02-15T10:00:00Z")
		return time.Time{}, false
	}
	return t, true
}

// minutes parses a Go duration that must be a positive whole number of
// minutes ("15m", "1h30m", "24h").
func minutes(s string) (time.Duration, string) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, "must be a duration such as 15m, 1h or 24h"
	}
	if d <= 0 || d%time.Minute != 0 {
		return 0, "must be a positive whole number of minutes, such as 1m, 5m or 1h"
	}
	return d, ""
}

// FormatStep renders a step compactly: "5m", "1h", "1h30m".
func FormatStep(d time.Duration) string {
	s := strings.TrimSuffix(d.String(), "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
