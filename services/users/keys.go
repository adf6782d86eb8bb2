package users

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
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
	db *database.DB

	mu     sync.RWMutex
	signer ed25519.PrivateKey
	kid    string
	public map[string]ed25519.PublicKey
	loaded time.Time
}

// loadKeys reads the signing keys, making the first one if there is none.
func loadKeys(ctx context.Context, db *database.DB) (*keyring, error) {
	k := &keyring{db: db}
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
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		// Another replica may have made one meanwhile; the newest wins and
		// both stay published, so either signature verifies.
		_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (kid, seed, created_at) VALUES ($1, $2, $3)`,
			ids.New(), base64.StdEncoding.EncodeToString(priv.Seed()), time.Now().UnixMilli())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storing the signing key: %w", err)
	}
	return k, k.reload(ctx)
}

func (k *keyring) reload(ctx context.Context) error {
	rows, err := k.db.QueryContext(ctx, `SELECT kid, seed FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at, kid`)
	if err != nil {
		return fmt.Errorf("reading signing keys: %w", err)
	}
	defer rows.Close()
	public := map[string]ed25519.PublicKey{}
	var signer ed25519.PrivateKey
	var kid string
	for rows.Next() {
		var id, seed string
		if err := rows.Scan(&id, &seed); err != nil {
			return fmt.Errorf("reading signing keys: %w", err)
		}
		b, err := base64.StdEncoding.DecodeString(seed)
		if err != nil || len(b) != ed25519.SeedSize {
			return fmt.Errorf("signing key %s is corrupt", id)
		}
		priv := ed25519.NewKeyFromSeed(b)
		public[id] = priv.Public().(ed25519.PublicKey)
		signer, kid = priv, id // the last row is the newest
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading signing keys: %w", err)
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
