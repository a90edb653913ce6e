// Package problem writes RFC 9457 problem details. Every HTTP error of the
// services leaves through Write, so clients always get
// application/problem+json with type, title, status and detail.
package problem

import (
	"encoding/json"
	"net/http"

	"github.com/resilientanalytics/ra/pkg/metric"
)

// TypeBase prefixes the type URIs of our problems.
const TypeBase = "https://resilient-analytics.dev/problems/"

// Problem is one RFC 9457 problem details object.
type Problem struct {
	// Type identifies the kind of problem (a URI).
	Type string `json:"type"`
	// Title is a short summary that is the same for every problem of Type.
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail explains this occurrence.
	Detail string `json:"detail,omitempty"`
	// Instance is the request path.
	Instance string `json:"instance,omitempty"`
	// RequestID echoes X-Request-ID so a user can quote it.
	RequestID string `json:"request_id,omitempty"`
	// Errors lists invalid fields (validation problems only).
	Errors []metric.FieldError `json:"errors,omitempty"`
	// ViolatedPolicies names the rate-limit policies the request exceeded
	// (quota-exceeded only, as the IETF RateLimit draft defines it).
	ViolatedPolicies []string `json:"violated-policies,omitempty"`
}

// New returns a problem of the given kind (last path segment of its type URI).
func New(status int, kind, title, detail string) Problem {
	return Problem{Type: TypeBase + kind, Title: title, Status: status, Detail: detail}
}

// Write sends p. The request's path becomes the instance when unset.
func Write(w http.ResponseWriter, r *http.Request, p Problem) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	if p.RequestID == "" {
		p.RequestID = w.Header().Get("X-Request-Id")
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
