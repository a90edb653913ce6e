package metric_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/resilientanalytics/ra/pkg/metric"
)

// now is the tests' clock; the seed timestamps are in its past.
var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// newDecoder returns a decoder on the tests' clock; zero fields of l take
// the defaults.
func newDecoder(tb testing.TB, l metric.Limits) *metric.Decoder {
	tb.Helper()
	if l.Now == nil {
		l.Now = func() time.Time { return now }
	}
	d, err := metric.NewDecoder(l)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func TestDecodeSingle(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		want      metric.Metric
		wantField string // first invalid field; "" = accepted
		syntax    bool
	}{
		{name: "seed example, no zone is UTC", body: `{"timestamp":"2026-02-15T10:00:00","value":75,"type":"cpu_usage"}`,
			want: metric.Metric{Timestamp: time.Date(2026, 2, 15, 10, 0, 0, 0, time.UTC), Value: 75, Type: "cpu_usage"}},
		{name: "zone offset converted", body: `{"timestamp":"2026-02-15T12:00:00+02:00","value":1.5,"type":"a"}`,
			want: metric.Metric{Timestamp: time.Date(2026, 2, 15, 10, 0, 0, 0, time.UTC), Value: 1.5, Type: "a"}},
		{name: "fractional seconds kept to microseconds", body: `{"timestamp":"2026-02-15T10:00:00.123456789Z","value":-0.25,"type":"x.y:z-1_2"}`,
			want: metric.Metric{Timestamp: time.Date(2026, 2, 15, 10, 0, 0, 123456000, time.UTC), Value: -0.25, Type: "x.y:z-1_2"}},
		{name: "exponent number", body: `{"timestamp":"2026-02-15T10:00:00Z","value":1e3,"type":"a"}`,
			want: metric.Metric{Timestamp: time.Date(2026, 2, 15, 10, 0, 0, 0, time.UTC), Value: 1000, Type: "a"}},
		{name: "100-char type", body: `{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"` + strings.Repeat("a", 100) + `"}`,
			want: metric.Metric{Timestamp: time.Date(2026, 2, 15, 10, 0, 0, 0, time.UTC), Value: 1, Type: strings.Repeat("a", 100)}},
		{name: "string value", body: `{"timestamp":"2026-02-15T10:00:00","value":"75","type":"cpu_usage"}`, wantField: "value"},
		{name: "overflow value", body: `{"timestamp":"2026-02-15T10:00:00","value":1e400,"type":"cpu_usage"}`, wantField: "value"},
		{name: "null value", body: `{"timestamp":"2026-02-15T10:00:00","value":null,"type":"cpu_usage"}`, wantField: "value"},
		{name: "bool value", body: `{"timestamp":"2026-02-15T10:00:00","value":true,"type":"cpu_usage"}`, wantField: "value"},
		{name: "missing value", body: `{"timestamp":"2026-02-15T10:00:00","type":"cpu_usage"}`, wantField: "value"},
		{name: "missing timestamp", body: `{"value":1,"type":"cpu_usage"}`, wantField: "timestamp"},
		{name: "bad timestamp", body: `{"timestamp":"yesterday","value":1,"type":"cpu_usage"}`, wantField: "timestamp"},
		{name: "numeric timestamp", body: `{"timestamp":1771149600,"value":1,"type":"cpu_usage"}`, wantField: "timestamp"},
		{name: "date only", body: `{"timestamp":"2026-02-15","value":1,"type":"cpu_usage"}`, wantField: "timestamp"},
		{name: "before 1970", body: `{"timestamp":"1969-12-31T23:59:59Z","value":1,"type":"cpu_usage"}`, wantField: "timestamp"},
		{name: "after 2^53 microseconds", body: `{"timestamp":"2300-01-01T00:00:00Z","value":1,"type":"cpu_usage"}`, wantField: "timestamp"},
		{name: "missing type", body: `{"timestamp":"2026-02-15T10:00:00","value":1}`, wantField: "type"},
		{name: "empty type", body: `{"timestamp":"2026-02-15T10:00:00","value":1,"type":""}`, wantField: "type"},
		{name: "type with star", body: `{"timestamp":"2026-02-15T10:00:00","value":1,"type":"cpu*"}`, wantField: "type"},
		{name: "type with brace", body: `{"timestamp":"2026-02-15T10:00:00","value":1,"type":"cpu{0}"}`, wantField: "type"},
		{name: "type with space", body: `{"timestamp":"2026-02-15T10:00:00","value":1,"type":"cpu usage"}`, wantField: "type"},
		{name: "101-char type", body: `{"timestamp":"2026-02-15T10:00:00","value":1,"type":"` + strings.Repeat("a", 101) + `"}`, wantField: "type"},
		{name: "numeric type", body: `{"timestamp":"2026-02-15T10:00:00","value":1,"type":5}`, wantField: "type"},
		{name: "unknown field typo", body: `{"timestamp":"2026-02-15T10:00:00","vlaue":1,"type":"cpu_usage"}`, wantField: "value"},
		{name: "extra field", body: `{"timestamp":"2026-02-15T10:00:00","value":1,"type":"cpu_usage","host":"a"}`, wantField: "host"},
		{name: "empty body", body: ``, syntax: true},
		{name: "whitespace body", body: "  \n", syntax: true},
		{name: "null body", body: `null`, syntax: true},
		{name: "scalar body", body: `42`, syntax: true},
		{name: "malformed", body: `{"timestamp":`, syntax: true},
		{name: "trailing garbage", body: `{"timestamp":"2026-02-15T10:00:00","value":1,"type":"a"} x`, syntax: true},
	}
	d := newDecoder(t, metric.Limits{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, batch, err := d.Decode([]byte(tt.body))
			if batch {
				t.Errorf("batch = true for a single object")
			}
			switch {
			case tt.syntax:
				var se *metric.SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("err = %v, want *SyntaxError", err)
				}
			case tt.wantField != "":
				var ve *metric.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("err = %v, want *ValidationError", err)
				}
				if ve.Errors[0].Field != tt.wantField || ve.Errors[0].Message == "" {
					t.Fatalf("errors = %+v, want first field %q with a message", ve.Errors, tt.wantField)
				}
			default:
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if len(got) != 1 || !got[0].Timestamp.Equal(tt.want.Timestamp) || got[0].Value != tt.want.Value || got[0].Type != tt.want.Type {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
			}
		})
	}
}

func TestDecodeUnknownFieldAndMissingFieldBothReported(t *testing.T) {
	_, _, err := newDecoder(t, metric.Limits{}).Decode([]byte(`{"timestamp":"2026-02-15T10:00:00","vlaue":1,"type":"cpu_usage"}`))
	var ve *metric.ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 2 {
		t.Fatalf("err = %v; want value required and vlaue unknown", err)
	}
	if ve.Errors[0].Field != "value" || ve.Errors[1].Field != "vlaue" {
		t.Fatalf("errors = %+v", ve.Errors)
	}
}

func TestDecodeBatch(t *testing.T) {
	good := `{"timestamp":"2026-02-15T10:00:00Z","value":1,"type":"a"}`
	tests := []struct {
		name       string
		body       string
		max        int
		wantN      int
		wantFields []string
		wantErr    error
		tooLarge   bool
	}{
		{name: "two valid", body: "[" + good + "," + good + "]", max: 10, wantN: 2},
		{name: "empty array", body: "[]", max: 10, wantErr: metric.ErrEmptyBatch},
		{name: "over max", body: "[" + good + "," + good + "," + good + "]", max: 2, tooLarge: true},
		{name: "every bad item listed with index", max: 10, body: "[" + good + `,{"timestamp":"x","value":1,"type":"a"},` + good + `,{"timestamp":"2026-02-15T10:00:00Z","value":"1","type":"a b"}]`,
			wantFields: []string{"[1].timestamp", "[3].type", "[3].value"}},
		{name: "non-object item", body: "[" + good + ",42]", max: 10, wantFields: []string{"[1]"}},
		{name: "null item", body: "[null]", max: 10, wantFields: []string{"[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, batch, err := newDecoder(t, metric.Limits{MaxBatch: tt.max}).Decode([]byte(tt.body))
			if !batch {
				t.Error("batch = false for an array")
			}
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			case tt.tooLarge:
				var be *metric.BatchTooLargeError
				if !errors.As(err, &be) || be.Max != tt.max {
					t.Fatalf("err = %v, want BatchTooLargeError", err)
				}
			case tt.wantFields != nil:
				var ve *metric.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("err = %v, want ValidationError", err)
				}
				var fields []string
				for _, fe := range ve.Errors {
					fields = append(fields, fe.Field)
					if fe.Message == "" {
						t.Errorf("%s has no message", fe.Field)
					}
				}
				if strings.Join(fields, ",") != strings.Join(tt.wantFields, ",") {
					t.Fatalf("fields = %v, want %v", fields, tt.wantFields)
				}
				if got != nil {
					t.Fatal("an invalid batch returned metrics")
				}
			default:
				if err != nil || len(got) != tt.wantN {
					t.Fatalf("got %d metrics, err %v", len(got), err)
				}
			}
		})
	}
}
