// Package config loads a service's settings from environment variables with
// caarlos0/env, names the variable in every error, and renders the effective
// configuration for the start-up log with secrets masked.
//
// Variable names and defaults are always the library's own field data
// (env.GetFieldParams), never derived from Go field names. Durations accept
// a Go duration ("1m30s") or plain seconds ("60"); floats and durations must
// be finite and durations must fit time.Duration.
package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Load fills dst (a pointer to a struct with `env` tags) from the
// environment. environ overrides the process environment when non-nil
// (tests). The error is the first invalid variable, named with its value,
// e.g. `RATE_LIMIT_MAX: invalid value "abc": invalid syntax`.
func Load(dst any, environ map[string]string) error {
	if environ == nil {
		environ = env.ToMap(os.Environ())
	}
	fs, err := fields(dst, environ)
	if err != nil {
		return err
	}
	for _, f := range fs {
		if !parsable(f.value.Type()) {
			return fmt.Errorf("config: %s (field %s): type %s has no parser that names its variable", f.Name, f.Field, f.value.Type())
		}
	}
	// env calls OnSet for a field just before it parses that field's value,
	// so while a parser runs, cur is the variable it parses: ParseError
	// itself only names the Go field, which two structs may share.
	var cur struct{ key, value string }
	funcs := make(map[reflect.Type]env.ParserFunc, len(parsers))
	for t, parse := range parsers {
		funcs[t] = func(s string) (any, error) {
			v, err := parse(s)
			if err != nil {
				var ne *strconv.NumError
				if errors.As(err, &ne) {
					err = ne.Err // the variable and value are said already
				}
				return nil, &valueError{key: cur.key, value: cur.value, err: err}
			}
			return v, nil
		}
	}
	err = env.ParseWithOptions(dst, env.Options{
		Environment: environ,
		FuncMap:     funcs,
		OnSet: func(key string, value any, _ bool) {
			cur.key = key
			cur.value, _ = value.(string)
		},
	})
	return loadError(err, fs, environ)
}

// valueError is an invalid value of one variable.
type valueError struct {
	key, value string
	err        error
}

func (e *valueError) Error() string {
	return fmt.Sprintf("%s: invalid value %q: %v", e.key, e.value, e.err)
}

func (e *valueError) Unwrap() error { return e.err }

// loadError turns the first of env's errors into one line naming the
// variable; the library lists them in declaration order.
func loadError(err error, fs []field, environ map[string]string) error {
	if err == nil {
		return nil
	}
	var agg env.AggregateError
	if errors.As(err, &agg) && len(agg.Errors) > 0 {
		err = agg.Errors[0]
	}
	var pe env.ParseError
	if errors.As(err, &pe) {
		err = pe.Err // ParseError has no Unwrap
		if _, ours := err.(*valueError); !ours {
			// A TextUnmarshaler failed: env parsed it itself, so the field
			// is found by its Go name and type (OnSet has moved on: env
			// parses every field before it reports).
			if f, ok := fieldOf(fs, pe); ok {
				err = &valueError{key: f.Name, value: environ[f.Name], err: err}
			}
		}
	}
	var (
		ve       *valueError
		notSet   env.VarIsNotSetError
		empty    env.EmptyVarError
		fromFile env.LoadFileContentError
	)
	switch {
	case errors.As(err, &ve):
		for _, f := range fs {
			if f.Name == ve.key && f.Secret != "" {
				ve.value = "xxxxx" // the log must not carry a secret, not even a mistyped one
			}
		}
		return ve
	case errors.As(err, &notSet):
		return fmt.Errorf("%s: required, but not set", notSet.Key)
	case errors.As(err, &empty):
		return fmt.Errorf("%s: must not be empty", empty.Key)
	case errors.As(err, &fromFile):
		return fmt.Errorf("%s: cannot read the file %q: %w", fromFile.Key, fromFile.Filename, fromFile.Err)
	}
	return fmt.Errorf("config: %w", err)
}

// fieldOf finds the one field pe is about, by Go name and type.
func fieldOf(fs []field, pe env.ParseError) (field, bool) {
	var found []field
	for _, f := range fs {
		if (f.Field == pe.Name || strings.HasSuffix(f.Field, "."+pe.Name)) && f.value.Type() == pe.Type {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		return field{}, false
	}
	return found[0], true
}

// parsers are the value parsers Load hands to env, one per field type it
// supports (slices and maps of them too); each failure becomes a valueError.
var parsers = map[reflect.Type]func(string) (any, error){
	reflect.TypeFor[string](): func(s string) (any, error) { return s, nil },
	reflect.TypeFor[bool]():   func(s string) (any, error) { return strconv.ParseBool(s) },
	reflect.TypeFor[int](): func(s string) (any, error) {
		i, err := strconv.ParseInt(s, 10, 0)
		return int(i), err
	},
	reflect.TypeFor[int64]():         func(s string) (any, error) { return strconv.ParseInt(s, 10, 64) },
	reflect.TypeFor[float64]():       parseFloat,
	reflect.TypeFor[time.Duration](): parseDuration,
}

// textType tells whether t (not a pointer) parses itself with
// UnmarshalText.
func textType(t reflect.Type) bool {
	return t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
}

// parsable tells whether env parses a field of type t through parsers: a
// TextUnmarshaler or a type without a parser would fail without naming
// its variable.
func parsable(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if textType(t) {
		return true // errors named through OnSet (see loadError)
	}
	known := func(t reflect.Type) bool {
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		_, ok := parsers[t]
		return ok
	}
	switch {
	case known(t):
		return true
	case t.Kind() == reflect.Slice:
		return known(t.Elem()) && !reflect.PointerTo(t.Elem()).Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
	case t.Kind() == reflect.Map:
		return known(t.Key()) && known(t.Elem())
	}
	return false
}

// parseFloat rejects NaN and the infinities strconv accepts: a range check
// such as 0 <= x <= 1 is false for NaN, so a NaN would fail far from here.
func parseFloat(s string) (any, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, err
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errors.New("not a finite number")
	}
	return f, nil
}

var (
	errDurationRange = fmt.Errorf("out of range: a duration is at most ±%s", time.Duration(math.MaxInt64).Truncate(time.Second))
	// durationSyntax is time.ParseDuration's grammar: a string it matches
	// that ParseDuration refuses overflowed.
	durationSyntax = regexp.MustCompile(`^[-+]?((\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$`)
)

func parseDuration(s string) (any, error) {
	s = strings.TrimSpace(s)
	secs, err := strconv.ParseFloat(s, 64)
	switch {
	case err == nil && (math.IsNaN(secs) || math.IsInf(secs, 0)):
		return nil, errors.New("not a finite number of seconds")
	case err == nil || errors.Is(err, strconv.ErrRange):
		// A float64 beyond ±2^63 ns converts to an arbitrary Duration.
		ns := math.Round(secs * float64(time.Second))
		if ns >= 1<<63 || ns < -(1<<63) {
			return nil, errDurationRange
		}
		return time.Duration(ns), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if durationSyntax.MatchString(s) {
			return nil, errDurationRange
		}
		return nil, errors.New(`not a duration: use e.g. "60s", "1m30s" or plain seconds "60"`)
	}
	return d, nil
}

// Describe returns the effective configuration of cfg (a struct or a
// pointer to one) as slog-style key/value pairs keyed by variable name, in
// declaration order. Fields tagged `secret:"true"` are masked;
// `secret:"url"` keeps the URL but masks its password (RedactURL).
func Describe(cfg any) []any {
	ptr, ok := structCopy(cfg)
	if !ok {
		return nil
	}
	fs := mustFields(ptr)
	out := make([]any, 0, 2*len(fs))
	for _, f := range fs {
		val := fmt.Sprint(f.value.Interface())
		switch f.Secret {
		case "true":
			if val != "" {
				val = "xxxxx"
			}
		case "url":
			val = RedactURL(val)
		}
		out = append(out, f.Name, val)
	}
	return out
}

// RedactURL masks the password of a URL for logging, as net/url's
// URL.Redacted does: "redis://:hunter2@redis:6379/0" becomes
// "redis://:xxxxx@redis:6379/0". A URL with an "@" that net/url does not
// read as user info (it fails to parse, or a password holds an unescaped
// "/" and ends up in the path) is shown as "(unparsable)": better no URL in
// the log than part of a password.
func RedactURL(raw string) string {
	if !strings.Contains(raw, "@") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
