package users

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Signing keys are kept in users' database sealed with a key-encryption
// key (KEK) that is not in the database: AES-256-GCM, the key's id as
// additional data so a sealed seed cannot be moved to another key's
// row. Whoever copies the database (a backup, a replica's disk, a
// dump) gets seeds they cannot use to sign tokens without the KEK too.
//
// A sealed seed is stored as "aes256gcm:<kek id>:<base64 nonce+ciphertext>";
// the KEK's id is the first 8 bytes of its SHA-256, so users knows which
// of the KEKs it was given opened it. A seed stored before there was a
// KEK is plain base64 and is sealed at the next start that has one.

const sealPrefix = "aes256gcm:"

// sealer seals and opens signing-key seeds. Its zero value has no KEK:
// it stores seeds as they are.
type sealer struct {
	current  *kek
	previous []*kek
}

type kek struct {
	id   string
	aead cipher.AEAD
}

// newSealer reads the current KEK and any previous ones (base64 of 32
// bytes each). previous lists KEKs that may still have sealed a stored
// key during a rotation; they open, never seal.
func newSealer(current string, previous []string) (sealer, error) {
	var s sealer
	previous = slices.DeleteFunc(slices.Clone(previous), func(p string) bool { return strings.TrimSpace(p) == "" })
	if strings.TrimSpace(current) == "" {
		if len(previous) > 0 {
			return s, errors.New("a previous key-encryption key needs a current one to seal with")
		}
		return s, nil
	}
	k, err := parseKEK(current)
	if err != nil {
		return s, fmt.Errorf("the key-encryption key: %w", err)
	}
	s.current = k
	for i, p := range previous {
		k, err := parseKEK(p)
		if err != nil {
			return s, fmt.Errorf("previous key-encryption key %d: %w", i+1, err)
		}
		s.previous = append(s.previous, k)
	}
	return s, nil
}

// ReadKEKFile reads a key-encryption key from path, as `microshop run`
// writes it and a mounted Secret holds it: base64 of 32 bytes.
func ReadKEKFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the key-encryption key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// NewKEK makes a key-encryption key, base64 as the flags read it.
func NewKEK() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making a key-encryption key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

func parseKEK(s string) (*kek, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != 32 {
		return nil, errors.New("want base64 of 32 random bytes (openssl rand -base64 32)")
	}
	block, err := aes.NewCipher(b)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return &kek{id: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// enabled reports whether seeds are sealed.
func (s sealer) enabled() bool { return s.current != nil }

// seal returns the stored form of seed (base64) for the key kid.
func (s sealer) seal(kid, seed string) (string, error) {
	if s.current == nil {
		return seed, nil
	}
	nonce := make([]byte, s.current.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("sealing signing key %s: %w", kid, err)
	}
	out := s.current.aead.Seal(nonce, nonce, []byte(seed), []byte(kid))
	return sealPrefix + s.current.id + ":" + base64.StdEncoding.EncodeToString(out), nil
}

// open returns the seed (base64) of a stored key, and whether it should
// be stored again: it was plain, or sealed with a previous KEK.
func (s sealer) open(kid, stored string) (seed string, reseal bool, err error) {
	rest, sealed := strings.CutPrefix(stored, sealPrefix)
	if !sealed {
		return stored, s.current != nil, nil
	}
	id, b64, ok := strings.Cut(rest, ":")
	box, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil {
		return "", false, fmt.Errorf("signing key %s: its sealed form is corrupt", kid)
	}
	for i, k := range append([]*kek{s.current}, s.previous...) {
		if k == nil || k.id != id {
			continue
		}
		n := k.aead.NonceSize()
		if len(box) < n {
			return "", false, fmt.Errorf("signing key %s: its sealed form is corrupt", kid)
		}
		plain, err := k.aead.Open(nil, box[:n], box[n:], []byte(kid))
		if err != nil {
			return "", false, fmt.Errorf("signing key %s does not open with the key-encryption key %s: it was altered", kid, id)
		}
		return string(plain), i > 0, nil
	}
	return "", false, fmt.Errorf("signing key %s is sealed with key-encryption key %s, which users was not given (--key-encryption-key, or --previous-key-encryption-key while rotating)", kid, id)
}
