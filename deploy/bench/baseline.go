package main

import (
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// baselineHandler is the HTTP limit of this machine: a bare net/http
// handler that decodes the same JSON the api takes and answers 201, with no
// validation, no Redis and no middleware. Everything the api does costs
// throughput relative to it; the ratio is what the benchmarks track.
func baselineHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Timestamp string  `json:"timestamp"`
			Value     float64 `json:"value"`
			Type      string  `json:"type"`
		}
		body, err := io.ReadAll(r.Body)
		if err != nil || json.Unmarshal(body, &m) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"0-0","type":"` + m.Type + `"}`))
	})
}

func serveBaseline(addr string) error {
	srv := &http.Server{Addr: addr, Handler: baselineHandler(), ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
}
