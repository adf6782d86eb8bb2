package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
)

// System names the system these keys belong to: a short digest of every
// service's public key, the same in every process of one system and
// different in any other (another `microshop run`, another deployment).
// Balancers use it to tell their own replicas from a stranger listening
// on a replica's port. It is empty when no public key is known.
func (k *ServiceKeys) System() string {
	if k == nil || len(k.Public) == 0 {
		return ""
	}
	names := make([]string, 0, len(k.Public))
	for n := range k.Public {
		names = append(names, n)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n + "="))
		h.Write(k.Public[n])
		h.Write([]byte{','})
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}
