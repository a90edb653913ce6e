// Package config loads a service's settings from environment variables with
// caarlos0/env, names the variable in every error, and renders the effective
// configuration for the start-up log with secrets masked.
//
// Durations accept a Go duration ("1m30s") or plain seconds ("60").
package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Load fills dst (a pointer to a struct with `env` tags) from the
// environment. environ overrides the process environment when non-nil
// (tests). An error names the variable, e.g.
// `RATE_LIMIT_MAX: invalid value "abc": strconv.ParseInt: ...`.
func Load(dst any, environ map[string]string) error {
	opts := env.Options{
		FuncMap: map[reflect.Type]env.ParserFunc{
			reflect.TypeOf(time.Duration(0)): parseDuration,
		},
	}
	if environ != nil {
		opts.Environment = environ
	}
	err := env.ParseWithOptions(dst, opts)
	if err == nil {
		return nil
	}
	names := envNames(reflect.TypeOf(dst).Elem())
	var agg env.AggregateError
	if errors.As(err, &agg) && len(agg.Errors) > 0 {
		var pe env.ParseError
		if errors.As(agg.Errors[0], &pe) {
			key := names[pe.Name]
			if key == "" {
				key = pe.Name
			}
			return fmt.Errorf("%s: invalid value %q: %w", key, lookup(environ, key), unwrapParse(pe.Err))
		}
		return agg.Errors[0]
	}
	return err
}

func unwrapParse(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}

func parseDuration(s string) (any, error) {
	s = strings.TrimSpace(s)
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, errors.New(`not a duration: use e.g. "60s", "1m30s" or plain seconds "60"`)
	}
	return d, nil
}

// envNames maps struct field names to their variables (nested structs too).
func envNames(t reflect.Type) map[string]string {
	out := map[string]string{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if tag := f.Tag.Get("env"); tag != "" {
				out[f.Name] = strings.Split(tag, ",")[0]
			} else if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Time{}) {
				walk(f.Type)
			}
		}
	}
	walk(t)
	return out
}

// Describe returns the effective configuration as slog-style key/value
// pairs keyed by variable name. Fields tagged `secret:"true"` are masked;
// `secret:"url"` keeps the URL but masks its password.
func Describe(cfg any) []any {
	var out []any
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("env")
			if tag == "" {
				if f.Type.Kind() == reflect.Struct {
					walk(v.Field(i))
				}
				continue
			}
			key := strings.Split(tag, ",")[0]
			val := fmt.Sprint(v.Field(i).Interface())
			switch f.Tag.Get("secret") {
			case "true":
				if val != "" {
					val = "xxxxx"
				}
			case "url":
				val = redactURL(val)
			}
			out = append(out, key, val)
		}
	}
	walk(reflect.Indirect(reflect.ValueOf(cfg)))
	return out
}

func redactURL(raw string) string {
	at := strings.LastIndex(raw, "@")
	scheme := strings.Index(raw, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return raw
	}
	userinfo := raw[scheme+3 : at]
	if user, _, ok := strings.Cut(userinfo, ":"); ok {
		return raw[:scheme+3] + user + ":xxxxx" + raw[at:]
	}
	return raw
}

func lookup(environ map[string]string, key string) string {
	if environ != nil {
		return environ[key]
	}
	v, _ := env.ToMap(osEnviron())[key]
	return v
}
