package middleware

import "net/http"

// CloseChunked ends the connection after answering any request whose body
// came with Transfer-Encoding (chunked). RFC 9112 section 6.1 requires
// closing after a request with both Transfer-Encoding and Content-Length,
// since a front end that framed it by Content-Length would have read a
// different request boundary (request smuggling). net/http drops the
// Content-Length of a chunked request before any handler sees it, so the
// pair cannot be told apart from plain chunking: every chunked request gets
// "Connection: close", which costs an honest client one reconnect.
func CloseChunked(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}
