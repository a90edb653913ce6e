package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/caarlos0/env/v11"
)

// field is one variable of a config struct: what caarlos0/env reports about
// it (Var.Name with any envPrefix, Var.Default) beside what the library
// does not report (the Go path, the secret tag and the field itself).
type field struct {
	Var
	value reflect.Value
}

// fields is the one walk behind Load, Describe and Vars. ptr points to a
// config struct. Names and defaults come from env.GetFieldParamsWithOptions;
// the library hands out no struct fields, so a walk in its own traversal
// order supplies them, and every FieldParams must pair with a field whose
// tag carries the same OwnKey, or the two walks disagree and fields fails.
func fields(ptr any, environ map[string]string) ([]field, error) {
	params, err := env.GetFieldParamsWithOptions(ptr, env.Options{Environment: environ})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var out []field
	var ownKeys []string
	leaves(reflect.ValueOf(ptr).Elem(), "", &out, &ownKeys)
	if len(out) != len(params) {
		return nil, fmt.Errorf("config: %T: %d variables by the struct walk, %d by caarlos0/env (slices of structs and nil pointers are not supported)",
			ptr, len(out), len(params))
	}
	for i, p := range params {
		if p.OwnKey != ownKeys[i] {
			return nil, fmt.Errorf("config: %T: field %s is %q by the struct walk, %q by caarlos0/env", ptr, out[i].Field, ownKeys[i], p.OwnKey)
		}
		out[i].Name = p.Key
		out[i].Default = p.DefaultValue
		out[i].HasDefault = p.HasDefaultValue
	}
	return out, nil
}

// leaves appends the fields of v that caarlos0/env reads, in its order
// (env's doParseField): unexported fields are skipped; non-nil pointers to
// structs and fields of anonymous struct type are entered; a field named
// `env:"-"` is skipped whole; any other field with a name is a variable,
// and a struct-typed field is entered after it.
func leaves(v reflect.Value, path string, out *[]field, ownKeys *[]string) {
	t := v.Type()
	for i := range t.NumField() {
		fv, sf := v.Field(i), t.Field(i)
		if !fv.CanSet() {
			continue
		}
		if fv.Kind() == reflect.Pointer && fv.Elem().Kind() == reflect.Struct && !fv.IsNil() {
			leaves(fv.Elem(), path+sf.Name+".", out, ownKeys)
			continue
		}
		if fv.Kind() == reflect.Struct && sf.Type.Name() == "" {
			leaves(fv, path+sf.Name+".", out, ownKeys)
			continue
		}
		parts := strings.Split(sf.Tag.Get("env"), ",")
		if parts[0] == "-" || slices.Contains(parts[1:], "-") {
			continue
		}
		if parts[0] != "" {
			*out = append(*out, field{Var: Var{Field: path + sf.Name, Secret: sf.Tag.Get("secret")}, value: fv})
			*ownKeys = append(*ownKeys, parts[0])
		}
		if fv.Kind() == reflect.Struct {
			leaves(fv, path+sf.Name+".", out, ownKeys)
		}
	}
}

// structCopy returns a pointer to an addressable copy of cfg (a struct or a
// pointer to one), or false when cfg is neither. Only the type matters when
// cfg is a nil pointer: the copy is then the zero value.
func structCopy(cfg any) (reflect.Value, bool) {
	v := reflect.ValueOf(cfg)
	if !v.IsValid() {
		return reflect.Value{}, false
	}
	t := v.Type()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	ptr := reflect.New(t)
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		ptr.Elem().Set(v)
	}
	return ptr, true
}

// mustFields is fields for Describe and Vars, which have no error to
// return. A failure is a config struct the library cannot read (an unknown
// tag option, say), which Load reports first at start.
func mustFields(ptr reflect.Value) []field {
	fs, err := fields(ptr.Interface(), map[string]string{})
	if err != nil {
		panic(err)
	}
	return fs
}
