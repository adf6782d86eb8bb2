package users

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"
	"time"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/ids"
)

// keyring holds the keys that sign access tokens: the newest signs, all
// unretired ones verify and are published as the JWKS. Replicas of users
// share the keys through the database.
type keyring struct {
	store  store
	sealer sealer

	mu     sync.RWMutex
	signer ed25519.PrivateKey
	kid    string
	public map[string]ed25519.PublicKey
	loaded time.Time
}

// loadKeys reads the signing keys, making the first one if there is none,
// and stores again, sealed with the current KEK, any it finds in plain
// text or sealed with a previous KEK.
func loadKeys(ctx context.Context, db *database.DB, sealer sealer) (*keyring, error) {
	k := &keyring{store: store{db: db}, sealer: sealer}
	if err := k.reload(ctx); err != nil {
		return nil, err
	}
	if k.signer != nil {
		return k, nil
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a signing key: %w", err)
	}
	// Another replica may have made one meanwhile; the newest wins and
	// both stay published, so either signature verifies.
	kid := ids.New()
	sealed, err := k.sealer.seal(kid, base64.StdEncoding.EncodeToString(priv.Seed()))
	if err != nil {
		return nil, err
	}
	if err := k.store.insertSigningKey(ctx, signingKey{KID: kid, Seed: sealed}, time.Now()); err != nil {
		return nil, err
	}
	return k, k.reload(ctx)
}

func (k *keyring) reload(ctx context.Context) error {
	keys, err := k.store.signingKeys(ctx)
	if err != nil {
		return err
	}
	public := map[string]ed25519.PublicKey{}
	var signer ed25519.PrivateKey
	var kid string
	for _, key := range keys {
		seed, reseal, err := k.sealer.open(key.KID, key.Seed)
		if err != nil {
			return err
		}
		if reseal {
			sealed, err := k.sealer.seal(key.KID, seed)
			if err != nil {
				return err
			}
			if err := k.store.resealSigningKey(ctx, key.KID, key.Seed, sealed); err != nil {
				return err
			}
		}
		b, err := base64.StdEncoding.DecodeString(seed)
		if err != nil || len(b) != ed25519.SeedSize {
			return fmt.Errorf("signing key %s is corrupt", key.KID)
		}
		priv := ed25519.NewKeyFromSeed(b)
		public[key.KID] = priv.Public().(ed25519.PublicKey)
		signer, kid = priv, key.KID // the last key is the newest
	}
	k.mu.Lock()
	k.signer, k.kid, k.public, k.loaded = signer, kid, public, time.Now()
	k.mu.Unlock()
	return nil
}

// current returns the key that signs new tokens.
func (k *keyring) current() (string, ed25519.PrivateKey) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.kid, k.signer
}

// publicKeys returns the verification keys by id.
func (k *keyring) publicKeys() map[string]ed25519.PublicKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.public
}

// jwks is the published key set.
func (k *keyring) jwks() auth.JWKS {
	set := auth.JWKS{Keys: []auth.JWK{}}
	for kid, pub := range k.publicKeys() {
		set.Keys = append(set.Keys, auth.PublicJWK(kid, pub))
	}
	return set
}
