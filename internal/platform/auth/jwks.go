package auth

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
)

// JWK is one public key in a JSON Web Key Set (RFC 8037 for Ed25519).
type JWK struct {
	KeyType   string `json:"kty"`
	Curve     string `json:"crv"`
	X         string `json:"x"`
	KeyID     string `json:"kid"`
	Algorithm string `json:"alg"`
	Use       string `json:"use"`
}

// JWKS is the document users publishes at /.well-known/jwks.json.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// PublicJWK describes an Ed25519 public key as a JWK.
func PublicJWK(kid string, pub ed25519.PublicKey) JWK {
	return JWK{KeyType: "OKP", Curve: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub),
		KeyID: kid, Algorithm: "EdDSA", Use: "sig"}
}

// keys returns the Ed25519 signing keys in set, by key id. Keys of other
// types are skipped rather than refused, so a future key type does not
// break today's verifiers.
func (set JWKS) keys() (map[string]ed25519.PublicKey, error) {
	out := make(map[string]ed25519.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.KeyType != "OKP" || k.Curve != "Ed25519" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if k.KeyID == "" {
			return nil, errors.New("jwks: a key has no kid")
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("jwks: key %q is not a valid Ed25519 public key", k.KeyID)
		}
		out[k.KeyID] = ed25519.PublicKey(x)
	}
	if len(out) == 0 {
		return nil, errors.New("jwks: no Ed25519 signing keys")
	}
	return out, nil
}
