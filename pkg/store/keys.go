package store

// Every Redis key name the services use is built in this file. Nothing else
// formats a key: api and aggregator must agree byte for byte, and every key of
// a partition carries the hash tag {<family>:<p>} so that one script may touch
// them together on Redis Cluster.

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// DefaultFamily is the default STREAM_KEY.
const DefaultFamily = "metrics"

// Keys names the keys of one family (STREAM_KEY).
type Keys struct {
	family string
}

// NewKeys returns the key builder for family; an empty family means DefaultFamily.
func NewKeys(family string) Keys {
	if family == "" {
		family = DefaultFamily
	}
	return Keys{family: family}
}

// Family is the STREAM_KEY the keys are built from.
func (k Keys) Family() string { return k.family }

// Tag is the hash tag of partition p, e.g. "{metrics:0}".
func (k Keys) Tag(p int) string {
	return "{" + k.family + ":" + strconv.Itoa(p) + "}"
}

// Stream is the stream of partition p: "{metrics:0}:stream".
func (k Keys) Stream(p int) string { return k.Tag(p) + ":stream" }

// Summary is the all-time summary hash of one metric type in partition p:
// "{metrics:0}:summary:cpu_usage".
func (k Keys) Summary(p int, metricType string) string {
	return k.Tag(p) + ":summary:" + metricType
}

// Dead is the dead-letter stream of partition p: "{metrics:0}:dead".
func (k Keys) Dead(p int) string { return k.Tag(p) + ":dead" }

// RateLimit is the fixed-window counter of one client routed to partition p:
// "{metrics:0}:rl:203.0.113.7".
func (k Keys) RateLimit(p int, client string) string {
	return k.Tag(p) + ":rl:" + client
}

// Bucket is the hash of one metric type's per-minute buckets for one UTC
// hour in partition p: "{metrics:0}:bucket:cpu_usage:492000". hour is the
// Unix hour (Unix seconds / 3600); the hash's fields are the minutes of that
// hour (see bucket.go for the field schema). One hash per hour rather than
// a key per minute keeps a week at 168 keys per type instead of 10,080.
func (k Keys) Bucket(p int, metricType string, hour int64) string {
	return k.Tag(p) + ":bucket:" + metricType + ":" + strconv.FormatInt(hour, 10)
}

// Types is the sorted set of the metric types aggregated in partition p
// (member: the type, score: its latest event time in Unix microseconds):
// "{metrics:0}:types".
func (k Keys) Types(p int) string { return k.Tag(p) + ":types" }

// Idempotency is the record of one client's Idempotency-Key in partition
// p (the client's partition, so one script checks it, counts the quota and
// appends): "{metrics:0}:idem:<64 hex digits>". Keys and client names may
// hold any printable character, so the name carries the hex SHA-256 of
// the pair, length-prefixed so that no two pairs share an input: one
// client can never reach another's record.
func (k Keys) Idempotency(p int, client, key string) string {
	h := sha256.New()
	_, _ = h.Write([]byte(strconv.Itoa(len(client))))
	_, _ = h.Write([]byte{':'})
	_, _ = h.Write([]byte(client))
	_, _ = h.Write([]byte(key))
	var sum [sha256.Size]byte
	return k.Tag(p) + ":idem:" + hex.EncodeToString(h.Sum(sum[:0]))
}

// AdmittedTypes is the set of the metric types the api has admitted to
// partition p (append.lua adds a request's new types with its entries;
// apply.lua adds every type it folds), a superset of the Types set that
// also holds the types still on their way through the stream:
// "{metrics:0}:admitted". MAX_TYPES is counted on it, so a burst of new
// types cannot overshoot the cap before the aggregator catches up.
func (k Keys) AdmittedTypes(p int) string { return k.Tag(p) + ":admitted" }
