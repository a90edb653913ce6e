package store

// The per-type summary hash: the aggregator writes it (from Lua, with these
// field names) and the api reads it. Keeping the names and the decoding here
// means the two cannot drift apart.

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Hash field names of a summary (key: Keys.Summary).
const (
	SummaryCount   = "count"
	SummarySum     = "sum"
	SummaryMin     = "min"
	SummaryMax     = "max"
	SummaryFirstTS = "first_ts" // Unix microseconds of the earliest metric
	SummaryLastTS  = "last_ts"  // Unix microseconds of the latest metric
)

// ErrCorrupt means a summary or bucket hash exists but cannot be read: it
// was not written by the aggregator's script (or was damaged).
var ErrCorrupt = errors.New("hash is corrupt")

// Summary is the all-time fold of one metric type: a Cell (count,
// sum, min, max) over all time, plus the span of timestamps seen.
type Summary struct {
	Cell
	FirstTS int64 // Unix microseconds
	LastTS  int64 // Unix microseconds
}

// Merge folds o into s (used to combine partitions).
func (s Summary) Merge(o Summary) Summary {
	if o.Count == 0 {
		return s
	}
	if s.Count == 0 {
		return o
	}
	s.Cell = s.Cell.Merge(o.Cell)
	s.FirstTS = min(s.FirstTS, o.FirstTS)
	s.LastTS = max(s.LastTS, o.LastTS)
	return s
}

// SummaryFromHash decodes HGETALL output. An empty map is (Summary{},
// false, nil): nothing of that type has been aggregated.
func SummaryFromHash(h map[string]string) (Summary, bool, error) {
	if len(h) == 0 {
		return Summary{}, false, nil
	}
	var s Summary
	var err error
	if s.Count, err = strconv.ParseInt(h[SummaryCount], 10, 64); err != nil {
		return Summary{}, false, fmt.Errorf("%w: summary count %q", ErrCorrupt, h[SummaryCount])
	}
	for _, f := range []struct {
		name string
		dst  *float64
	}{{SummarySum, &s.Sum}, {SummaryMin, &s.Min}, {SummaryMax, &s.Max}} {
		// inf or nan would fail every JSON answer of the type: corrupt.
		if *f.dst, err = strconv.ParseFloat(h[f.name], 64); err != nil || math.IsInf(*f.dst, 0) || math.IsNaN(*f.dst) {
			return Summary{}, false, fmt.Errorf("%w: summary %s %q", ErrCorrupt, f.name, h[f.name])
		}
	}
	for _, f := range []struct {
		name string
		dst  *int64
	}{{SummaryFirstTS, &s.FirstTS}, {SummaryLastTS, &s.LastTS}} {
		// Lua may render large integers as floats ("1.7e+15"); accept both.
		v, perr := strconv.ParseFloat(h[f.name], 64)
		if perr != nil {
			return Summary{}, false, fmt.Errorf("%w: summary %s %q", ErrCorrupt, f.name, h[f.name])
		}
		*f.dst = int64(v)
	}
	return s, true, nil
}
