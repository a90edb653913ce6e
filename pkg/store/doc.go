// Package store is the one home of the Redis data model, as asynq's
// internal/rdb is for its broker: every key name (keys.go), every Lua
// script (the embedded .lua files), every command either service sends,
// the stream entry codec (entry.go) and the layouts of the summary hashes
// (summary.go), the per-minute buckets (bucket.go), the types set and the
// admitted-types set MAX_TYPES is counted on (append.lua, apply.lua).
//
// The api appends (Append, AppendMany) and reads (Summary, Buckets, Types);
// the aggregator works one partition at a time through a Partition (group
// membership, reads, the XACK-guarded apply, dead letters, claims, trimming,
// leaving). Components in the services declare the small interfaces they
// use, and main hands them a *Store; nothing outside this package formats a
// key or calls go-redis, apart from building the client.
package store
