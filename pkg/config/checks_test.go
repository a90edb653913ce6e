package config_test

import (
	"strings"
	"testing"

	"github.com/resilientanalytics/ra/pkg/config"
)

func TestChecksReportTheFirstFailureByVariable(t *testing.T) {
	tests := []struct {
		name       string
		key        string
		partitions int
		level      string
		want       string
	}{
		{"all good", "metrics", 4, "info", ""},
		{"brace in key", "m{0}", 1, "info", "STREAM_KEY:"},
		{"zero partitions", "metrics", 0, "info", "STREAM_PARTITIONS:"},
		{"too many partitions", "metrics", 1025, "info", "STREAM_PARTITIONS:"},
		{"bad level", "metrics", 1, "loud", "LOG_LEVEL:"},
		{"first wins", "", 0, "loud", "STREAM_KEY:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cs config.Checks
			cs.Stream(tt.key, tt.partitions)
			cs.LogLevel(tt.level)
			err := cs.Err()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want prefix %q", err, tt.want)
			}
		})
	}
}
