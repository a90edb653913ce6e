package apikey

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Identity is who a request authenticated as: the key's name and quota.
// Every entry of one name yields the same Identity, so a rotated key keeps
// its predecessor's quota and idempotency scope.
type Identity struct {
	// Name is the entry's name.
	Name string
	// Quota is the name's own q/w (zero fields: the default applies).
	Quota Quota
}

// Set is the configured keys. The zero Set (and a nil *Set) has none:
// Middleware then lets every request through.
type Set struct {
	hashes [][32]byte
	ids    []*Identity // ids[i] is the identity of hashes[i]
	names  []string    // distinct names, sorted
}

// NewSet checks entries as one configuration: a hash may appear once, and
// every entry of a name must give the same quota (the quota belongs to the
// name, which is what is counted). pos names an entry in errors, e.g.
// "line 3"; an entry's hash is never part of an error.
func NewSet(entries []Entry, pos func(i int) string) (*Set, error) {
	s := &Set{}
	byName := map[string]int{} // first entry index per name
	byHash := map[[32]byte]int{}
	ids := map[string]*Identity{}
	for i, e := range entries {
		if j, dup := byHash[e.Hash]; dup {
			return nil, fmt.Errorf("%s: the same hash as %s (one key, one entry)", pos(i), pos(j))
		}
		byHash[e.Hash] = i
		if j, seen := byName[e.Name]; seen {
			if entries[j].Quota != e.Quota {
				return nil, fmt.Errorf("%s: name %q has another quota than in %s; every entry of a name must give the same q and w",
					pos(i), e.Name, pos(j))
			}
		} else {
			byName[e.Name] = i
			ids[e.Name] = &Identity{Name: e.Name, Quota: e.Quota}
			s.names = append(s.names, e.Name)
		}
		s.hashes = append(s.hashes, e.Hash)
		s.ids = append(s.ids, ids[e.Name])
	}
	slices.Sort(s.names)
	return s, nil
}

// Parse reads API_KEYS: entries separated by commas. Blank entries (a
// trailing comma) are skipped; errors name the entry by its position.
func Parse(list string) (*Set, error) {
	var entries []Entry
	var positions []int
	for i, raw := range strings.Split(list, ",") {
		if strings.TrimSpace(raw) == "" {
			continue
		}
		e, err := ParseEntry(raw)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
		entries = append(entries, e)
		positions = append(positions, i+1)
	}
	return NewSet(entries, func(i int) string { return fmt.Sprintf("entry %d", positions[i]) })
}

// ParseFile reads the contents of an API_KEYS_FILE: one entry a line;
// blank lines and lines starting with # are skipped. Errors name the line.
func ParseFile(b []byte) (*Set, error) {
	var entries []Entry
	var lines []int
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := ParseEntry(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		entries = append(entries, e)
		lines = append(lines, n)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	return NewSet(entries, func(i int) string { return fmt.Sprintf("line %d", lines[i]) })
}

// Load builds the Set from the two variables. Setting both is an error
// rather than a merge: one place to look when asking which keys are live.
// Errors start with the variable's name.
func Load(list, file string) (*Set, error) {
	switch {
	case strings.TrimSpace(list) != "" && file != "":
		return nil, errors.New("API_KEYS and API_KEYS_FILE are both set: use one of them")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is printed once, below
			}
			return nil, fmt.Errorf("API_KEYS_FILE: cannot read %s: %w", file, err)
		}
		s, err := ParseFile(b)
		if err != nil {
			return nil, fmt.Errorf("API_KEYS_FILE: %s %w", file, err)
		}
		return s, nil
	default:
		s, err := Parse(list)
		if err != nil {
			return nil, fmt.Errorf("API_KEYS: %w", err)
		}
		return s, nil
	}
}

// Len is the number of configured entries (keys).
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.hashes)
}

// Names are the distinct key names, sorted (the label values of the
// per-key metrics).
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.names)
}

// String summarises s without any hash.
func (s *Set) String() string {
	if s.Len() == 0 {
		return "no API keys"
	}
	return fmt.Sprintf("%d API keys for %s", s.Len(), strings.Join(s.names, ", "))
}

// Authenticate returns the identity whose hash is key's SHA-256. Every
// configured hash is compared, in constant time, whether or not an earlier
// one matched: how long it takes says nothing about which key, or how much
// of one, was right.
func (s *Set) Authenticate(key string) (*Identity, bool) {
	if s.Len() == 0 {
		return nil, false
	}
	sum := sha256.Sum256([]byte(key))
	match := 0 // index+1 of the matching hash, 0 for none
	for i := range s.hashes {
		eq := subtle.ConstantTimeCompare(sum[:], s.hashes[i][:])
		match = subtle.ConstantTimeSelect(eq, i+1, match)
	}
	if match == 0 {
		return nil, false
	}
	return s.ids[match-1], true
}
