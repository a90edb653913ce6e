package metric

import (
	"errors"
	"time"
)

// Reasons a timestamp is not an RFC 3339 date-time. They are sentinels so
// that rejecting a hostile body allocates nothing, and their text is what
// the client reads after "must be an RFC 3339 time".
var (
	errTimeLayout = errors.New("expected YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM], e.g. 2026-02-15T10:00:00Z (no zone means UTC)")
	errTimeMonth  = errors.New("month must be 01-12")
	errTimeDay    = errors.New("day does not exist in that month")
	errTimeHour   = errors.New("hour must be 00-23")
	errTimeMinute = errors.New("minute must be 00-59")
	errTimeSecond = errors.New("second must be 00-59 (60 only for a leap second at 23:59:60Z on 30 June or 31 December)")
	errTimeOffset = errors.New("zone offset must be Z or within -23:59..+23:59")
)

// ParseTime reads an RFC 3339 date-time (section 5.6), plus the form
// without a zone, which is read as UTC. It is stricter than time.Parse
// where that one is lax (offsets of 24 hours or 60 minutes, a comma before
// the fraction) and more lenient where RFC 3339 is (lowercase t and z).
//
// A leap second (second 60) is accepted only where one can occur: at
// 23:59:60 UTC on 30 June or 31 December. Unix time, which the stream keeps,
// has no 61st second, so it is read as the last instant of 23:59:59; that
// keeps it in its minute and in order with the seconds around it.
func ParseTime(s string) (time.Time, error) {
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' && s[10] != 't' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, errTimeLayout
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, errTimeLayout
	}
	switch {
	case month < 1 || month > 12:
		return time.Time{}, errTimeMonth
	case day < 1 || day > daysIn(month, year):
		return time.Time{}, errTimeDay
	case hour > 23:
		return time.Time{}, errTimeHour
	case minute > 59:
		return time.Time{}, errTimeMinute
	case sec > 60:
		return time.Time{}, errTimeSecond
	}
	i, nsec := 19, 0
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			if i-start < 9 { // digits past nanoseconds cannot change the time
				nsec = nsec*10 + int(s[i]-'0')
			}
		}
		if i == start {
			return time.Time{}, errTimeLayout
		}
		for n := i - start; n < 9; n++ {
			nsec *= 10
		}
	}
	offset := 0 // seconds east of UTC
	switch rest := s[i:]; {
	case rest == "", rest == "Z", rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := digits(rest[1:3])
		om, okm := digits(rest[4:6])
		if !okh || !okm {
			return time.Time{}, errTimeLayout
		}
		if oh > 23 || om > 59 {
			return time.Time{}, errTimeOffset
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, errTimeLayout
	}
	leap := sec == 60
	if leap {
		sec = 59
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC).Add(-time.Duration(offset) * time.Second)
	if leap {
		_, m, d := t.Date()
		if t.Hour() != 23 || t.Minute() != 59 || !(m == time.June && d == 30 || m == time.December && d == 31) {
			return time.Time{}, errTimeSecond
		}
		t = t.Truncate(time.Second).Add(time.Second - 1)
	}
	return t, nil
}

// digits reads a run of ASCII digits.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
