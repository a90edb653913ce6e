package store

// The per-minute buckets: the aggregator writes them (from Lua, in this
// format) and the api reads them. Keeping the layout and the decoding here
// means the two cannot drift apart.
//
// Layout: one hash per (partition, metric type, UTC hour), key
// Keys.Bucket(p, type, hour) with hour = Unix seconds / 3600. Its fields are
// the minute offsets of that hour, "0" … "59" (only minutes that saw a
// metric exist). Each field packs the minute's fold into one value:
//
//	"<count> <sum> <min> <max>"    e.g. "3 250.5 10 99.25"
//
// count is an integer; sum, min and max are float64 written with %.17g, so
// they round-trip exactly. One packed field per minute (not four) keeps an
// hour at 60 fields and lets the script read and write a minute with one
// field each.
//
// A minute belongs to the hour that contains it by event time (the metric's
// own timestamp, UTC), so buckets answer "what happened between T1 and T2",
// not "what arrived".

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Units of the bucket grid in Unix microseconds (the stream's timestamps).
const (
	MinuteMicros = int64(time.Minute / time.Microsecond)
	HourMicros   = int64(time.Hour / time.Microsecond)
	// MinutesPerHour is the number of fields an hour hash can hold.
	MinutesPerHour = 60
)

// Cell is the fold of one minute (or, merged, of any span of minutes).
type Cell struct {
	Count int64
	Sum   float64
	Min   float64
	Max   float64
}

// Average is Sum/Count (0 for an empty cell).
func (c Cell) Average() float64 {
	if c.Count == 0 {
		return 0
	}
	return c.Sum / float64(c.Count)
}

// Merge folds o into c (minutes into a step, or partitions into one answer).
func (c Cell) Merge(o Cell) Cell {
	if o.Count == 0 {
		return c
	}
	if c.Count == 0 {
		return o
	}
	c.Count += o.Count
	c.Sum += o.Sum
	c.Min = math.Min(c.Min, o.Min)
	c.Max = math.Max(c.Max, o.Max)
	return c
}

// Of returns the cell of a single value.
func Of(v float64) Cell { return Cell{Count: 1, Sum: v, Min: v, Max: v} }

// Hour is the Unix hour that holds the event time us (Unix microseconds,
// non-negative as the stream guarantees).
func Hour(us int64) int64 { return us / HourMicros }

// MinuteOfHour is the minute offset (0..59) of us within its hour.
func MinuteOfHour(us int64) int { return int(us % HourMicros / MinuteMicros) }

// BucketField is the hash field of minute offset m (0..59): "0" … "59".
func BucketField(m int) string { return strconv.Itoa(m) }

// EncodeCell renders c as the script does: "<count> <sum> <min> <max>".
func EncodeCell(c Cell) string {
	return strconv.FormatInt(c.Count, 10) + " " + fmtFloat(c.Sum) + " " + fmtFloat(c.Min) + " " + fmtFloat(c.Max)
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', 17, 64) }

// DecodeCell parses one bucket field value written by the script.
func DecodeCell(s string) (Cell, error) {
	parts := strings.Fields(s)
	if len(parts) != 4 {
		return Cell{}, fmt.Errorf("%w: bucket %q has %d parts, want 4", ErrCorrupt, s, len(parts))
	}
	var c Cell
	var err error
	// Lua may render a large count as a float ("1e+15"); accept both.
	cnt, err := strconv.ParseFloat(parts[0], 64)
	if err != nil || cnt < 1 || cnt != math.Trunc(cnt) {
		return Cell{}, fmt.Errorf("%w: bucket count %q", ErrCorrupt, parts[0])
	}
	c.Count = int64(cnt)
	for i, dst := range []*float64{&c.Sum, &c.Min, &c.Max} {
		if *dst, err = strconv.ParseFloat(parts[i+1], 64); err != nil || math.IsNaN(*dst) || math.IsInf(*dst, 0) {
			return Cell{}, fmt.Errorf("%w: bucket %q part %d", ErrCorrupt, s, i+2)
		}
	}
	return c, nil
}

// HourCells is the decoded hash of one hour: Minutes[m] is minute offset m
// (Count 0 where no metric was bucketed).
type HourCells struct {
	Minutes [MinutesPerHour]Cell
}

// HourFromHash decodes HGETALL output of one hour hash (empty when the hour
// saw nothing or has expired).
func HourFromHash(h map[string]string) (HourCells, error) {
	var hc HourCells
	for f, v := range h {
		m, err := strconv.Atoi(f)
		if err != nil || m < 0 || m >= MinutesPerHour || BucketField(m) != f {
			return HourCells{}, fmt.Errorf("%w: field %q is not a minute 0..59", ErrCorrupt, f)
		}
		c, err := DecodeCell(v)
		if err != nil {
			return HourCells{}, fmt.Errorf("minute %d: %w", m, err)
		}
		hc.Minutes[m] = c
	}
	return hc, nil
}

// Merge folds o into hc minute by minute (partitions into one hour).
func (hc *HourCells) Merge(o *HourCells) {
	for m := range hc.Minutes {
		hc.Minutes[m] = hc.Minutes[m].Merge(o.Minutes[m])
	}
}
