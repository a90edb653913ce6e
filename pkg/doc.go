// Package pkg is the module shared by the api and the aggregator: the metric
// schema, Redis key names, the Redis client, HTTP server lifecycle, problem
// responses, configuration loading and test helpers. Its packages live below.
package pkg
