package config

import (
	"reflect"
	"strings"
	"time"
)

// Var is one environment variable a configuration struct reads.
type Var struct {
	// Name is the variable, e.g. "RATE_LIMIT_MAX".
	Name string
	// Default is its envDefault ("" when it has none).
	Default string
	// HasDefault tells an empty default from none.
	HasDefault bool
	// Field is the Go path of the field, e.g. "RateLimit.Max".
	Field string
	// Secret is the field's `secret` tag ("", "true" or "url").
	Secret string
}

// Vars lists, in declaration order, every environment variable the config
// struct cfg (a struct or a pointer to one) reads through its `env` tags,
// walking nested structs as Load does. Deploy tests use it to check that a
// compose file sets only variables a service actually reads.
func Vars(cfg any) []Var {
	t := reflect.TypeOf(cfg)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var out []Var
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if tag := f.Tag.Get("env"); tag != "" {
				name := strings.Split(tag, ",")[0]
				if name == "" {
					continue
				}
				def, has := f.Tag.Lookup("envDefault")
				out = append(out, Var{Name: name, Default: def, HasDefault: has, Field: prefix + f.Name, Secret: f.Tag.Get("secret")})
				continue
			}
			if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Time{}) {
				walk(ft, prefix+f.Name+".")
			}
		}
	}
	walk(t, "")
	return out
}

// VarNames is Vars reduced to the set of names.
func VarNames(cfg any) map[string]bool {
	out := map[string]bool{}
	for _, v := range Vars(cfg) {
		out[v.Name] = true
	}
	return out
}
