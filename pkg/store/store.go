package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed append.lua
	appendSrc string
	//go:embed apply.lua
	applySrc string
	//go:embed deadletter.lua
	deadLetterSrc string
	//go:embed leave.lua
	leaveSrc string
	//go:embed trim.lua
	trimSrc string
	//go:embed lag.lua
	lagSrc string
)

// Store is the metrics data model on one Redis (a single node or a
// cluster). It is safe for concurrent use.
type Store struct {
	rdb        redis.UniversalClient
	keys       Keys
	partitions int

	appendScript, applyScript, deadLetterScript, leaveScript, trimScript *redis.Script
	lagScript                                                            *redis.Script

	// streams and rlPrefixes are the keys' names per partition, built once:
	// a request's rate-limit key is then one concatenation.
	streams, rlPrefixes []string

	// maxTypes is MAX_TYPES, the cap on a partition's admitted types
	// (append.go); typeKeys are each partition's types and admitted-types
	// keys, built once like streams.
	maxTypes    int
	maxTypesArg any // maxTypes as sent to append.lua, boxed once
	typeKeys    [][2]string
}

// New returns the store of key family family (STREAM_KEY; "" is
// DefaultFamily) with partitions stream partitions (at least 1) on rdb,
// and the options opts (WithMaxTypes).
func New(rdb redis.UniversalClient, family string, partitions int, opts ...Option) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("store: nil redis client")
	}
	if partitions < 1 {
		return nil, fmt.Errorf("store: partitions must be >= 1, got %d", partitions)
	}
	s := &Store{
		rdb:              rdb,
		keys:             NewKeys(family),
		partitions:       partitions,
		appendScript:     redis.NewScript(appendSrc),
		applyScript:      redis.NewScript(applySrc),
		deadLetterScript: redis.NewScript(deadLetterSrc),
		leaveScript:      redis.NewScript(leaveSrc),
		trimScript:       redis.NewScript(trimSrc),
		lagScript:        redis.NewScript(lagSrc),
		maxTypes:         DefaultMaxTypes,
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.maxTypesArg = strconv.Itoa(s.maxTypes)
	for p := range partitions {
		s.streams = append(s.streams, s.keys.Stream(p))
		s.rlPrefixes = append(s.rlPrefixes, s.keys.RateLimit(p, ""))
		s.typeKeys = append(s.typeKeys, [2]string{s.keys.Types(p), s.keys.AdmittedTypes(p)})
	}
	return s, nil
}

// Keys is the key builder of the store's family.
func (s *Store) Keys() Keys { return s.keys }

// Partitions is the number of stream partitions.
func (s *Store) Partitions() int { return s.partitions }

// Ping checks that Redis answers PING.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }
