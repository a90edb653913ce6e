package config

// Var is one environment variable a configuration struct reads.
type Var struct {
	// Name is the variable, e.g. "RATE_LIMIT_MAX" (with any envPrefix).
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
// struct cfg (a struct or a pointer to one) reads, as caarlos0/env reports
// them for Load. Deploy tests use it to check that a compose file sets only
// variables a service actually reads. It is nil when cfg is not a struct.
func Vars(cfg any) []Var {
	ptr, ok := structCopy(cfg)
	if !ok {
		return nil
	}
	var out []Var
	for _, f := range mustFields(ptr) {
		out = append(out, f.Var)
	}
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
