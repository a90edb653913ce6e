package main

import (
	"maps"
	"strings"
	"testing"
)

func TestParseEnv(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{"", map[string]string{}, false},
		{"GOGC=100", map[string]string{"GOGC": "100"}, false},
		{" GOGC=100 , INGEST_COALESCE=false,", map[string]string{"GOGC": "100", "INGEST_COALESCE": "false"}, false},
		{"A=", map[string]string{"A": ""}, false},
		{"GOGC", nil, true},
		{"=1", nil, true},
	}
	for _, tt := range tests {
		got, err := parseEnv(tt.in)
		if (err != nil) != tt.wantErr || !tt.wantErr && !maps.Equal(got, tt.want) {
			t.Errorf("parseEnv(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestABRatios(t *testing.T) {
	r := abResult{rounds: 10,
		a: result{Name: "A", Conns: 64, RPS: 1000, CPU: map[string]float64{"server": 20}},
		b: result{Name: "B", Conns: 64, RPS: 900, CPU: map[string]float64{"server": 25}}}
	if got := r.throughputRatio(); got < 0.899 || got > 0.901 {
		t.Errorf("throughput B/A %.3f, want 0.900", got)
	}
	if got := r.cpuRatio(); got < 1.249 || got > 1.251 {
		t.Errorf("CPU B/A %.3f, want 1.250", got)
	}
	if s := r.String(); !strings.Contains(s, "B/A throughput 0.900, B/A server CPU per request 1.250") || !strings.Contains(s, "10 alternating turns") {
		t.Errorf("summary lacks the ratios or the turns:\n%s", s)
	}
	if (abResult{}).throughputRatio() != 0 || (abResult{}).cpuRatio() != 0 {
		t.Error("ratio over an empty A is not 0")
	}
}
