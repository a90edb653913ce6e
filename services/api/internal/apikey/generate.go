package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
)

// KeyPrefix starts every generated key, so one found in a log, a ticket or
// a repository is recognisable as ours (and secret scanners can match it).
const KeyPrefix = "ra_"

// keyBytes is the key's randomness: 256 bits, well past the 128 needed.
const keyBytes = 32

// Generate returns a new key for name and the entry to configure for it.
// The key is KeyPrefix and 32 bytes from crypto/rand in URL-safe base64
// (no padding, so it is also a valid bearer token); only its hash is in
// the entry, so the key exists nowhere once the caller has handed it out.
func Generate(name string) (key string, entry Entry, err error) {
	return generate(rand.Reader, name)
}

func generate(r io.Reader, name string) (string, Entry, error) {
	if err := CheckName(name); err != nil {
		return "", Entry{}, err
	}
	var b [keyBytes]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", Entry{}, fmt.Errorf("reading randomness: %w", err)
	}
	key := KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, Entry{Name: name, Hash: sha256.Sum256([]byte(key))}, nil
}

// Keygen is the `api keygen NAME` command: it writes the new key and then
// the entry to configure to out, one a line, and the instructions to
// notes. It returns the exit code.
func Keygen(args []string, out, notes io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(notes, "usage: api keygen NAME   (NAME: 1-64 of [A-Za-z0-9_.-])")
		return 2
	}
	key, e, err := Generate(args[0])
	if err != nil {
		fmt.Fprintln(notes, "keygen:", err)
		return 2
	}
	fmt.Fprintln(notes, "# line 1: the key; give it to the client once, it is not stored anywhere")
	fmt.Fprintln(notes, "# line 2: the entry; add it to API_KEYS (comma-separated) or as a line of API_KEYS_FILE,")
	fmt.Fprintln(notes, "#         optionally with ;q=<requests>;w=<window>, then restart the api")
	fmt.Fprintln(out, key)
	fmt.Fprintln(out, e.Line())
	return 0
}
