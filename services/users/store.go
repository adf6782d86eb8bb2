package users

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/services/users/usersapi"
)

// account is a user as stored.
type account struct {
	ID           string
	Email        string
	Name         string
	PasswordHash string
	Roles        []string
	CreatedAt    time.Time
}

func (a account) public() usersapi.User {
	return usersapi.User{ID: a.ID, Email: a.Email, Name: a.Name, Roles: a.Roles}
}

func (a account) hasRole(r string) bool { return slices.Contains(a.Roles, r) }

// refreshToken is a stored refresh token (its hash, never the token).
type refreshToken struct {
	UserID    string
	FamilyID  string
	ExpiresAt time.Time
	UsedAt    *time.Time
	RevokedAt *time.Time
}

// store is the only code that touches users' tables.
type store struct{ db *database.DB }

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s store) insert(ctx context.Context, tx *sql.Tx, a account) error {
	ms := a.CreatedAt.UnixMilli()
	_, err := tx.ExecContext(ctx,
		`INSERT INTO users (id, email, name, password_hash, roles, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)`,
		a.ID, a.Email, a.Name, a.PasswordHash, strings.Join(a.Roles, ","), ms)
	if database.IsUniqueViolation(err) {
		return ErrEmailTaken
	}
	if err != nil {
		return fmt.Errorf("storing user: %w", err)
	}
	return nil
}

func (s store) update(ctx context.Context, tx *sql.Tx, id, name, hash string, roles []string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE users SET name = $1, password_hash = $2, roles = $3, updated_at = $4 WHERE id = $5`,
		name, hash, strings.Join(roles, ","), now.UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("updating user %s: %w", id, err)
	}
	return nil
}

const userColumns = `id, email, name, password_hash, roles, created_at`

func scanAccount(row *sql.Row) (account, error) {
	var a account
	var roles string
	var created int64
	err := row.Scan(&a.ID, &a.Email, &a.Name, &a.PasswordHash, &roles, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return account{}, ErrNotFound
	}
	if err != nil {
		return account{}, fmt.Errorf("reading user: %w", err)
	}
	a.Roles = strings.Split(roles, ",")
	a.CreatedAt = time.UnixMilli(created)
	return a, nil
}

// Reads find live accounts only: an erased one is a tombstone (its id and
// erased_at), which no login, token or profile reaches.

func (s store) byEmail(ctx context.Context, email string) (account, error) {
	return scanAccount(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1 AND erased_at IS NULL`, email))
}

func (s store) byID(ctx context.Context, id string) (account, error) {
	return s.byIDTx(ctx, s.db, id)
}

func (s store) byIDTx(ctx context.Context, q querier, id string) (account, error) {
	return scanAccount(q.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1 AND erased_at IS NULL`, id))
}

// erase overwrites what is personal in account id (email, name, password
// hash, roles) and deletes its refresh tokens, keeping the row as a
// tombstone. The email becomes "erased:<id>", which is unique as the
// column needs and no address, so nobody can log in with it. It reports
// whether the account was live: false when it is unknown or erased
// already.
func (s store) erase(ctx context.Context, tx *sql.Tx, id string, now time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE users SET email = $1, name = '', password_hash = '', roles = '',
		updated_at = $2, erased_at = $2 WHERE id = $3 AND erased_at IS NULL`,
		"erased:"+id, now.UnixMilli(), id)
	if err != nil {
		return false, fmt.Errorf("erasing user %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("erasing user %s: %w", id, err)
	}
	if n == 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE user_id = $1`, id); err != nil {
		return false, fmt.Errorf("deleting the refresh tokens of user %s: %w", id, err)
	}
	return true, nil
}

// erased reports whether id names an erased account.
func (s store) erased(ctx context.Context, id string) (bool, error) {
	var at sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT erased_at FROM users WHERE id = $1`, id).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading user %s: %w", id, err)
	}
	return at.Valid, nil
}

func (s store) insertRefresh(ctx context.Context, tx *sql.Tx, hash, userID, family string, expires, now time.Time) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)`,
		hash, userID, family, expires.UnixMilli(), now.UnixMilli())
	if err != nil {
		return fmt.Errorf("storing refresh token: %w", err)
	}
	return nil
}

func (s store) refreshByHash(ctx context.Context, tx *sql.Tx, hash string) (refreshToken, error) {
	var rt refreshToken
	var expires int64
	var used, revoked sql.NullInt64
	err := tx.QueryRowContext(ctx,
		`SELECT user_id, family_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1`, hash).
		Scan(&rt.UserID, &rt.FamilyID, &expires, &used, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return refreshToken{}, ErrBadRefresh
	}
	if err != nil {
		return refreshToken{}, fmt.Errorf("reading refresh token: %w", err)
	}
	rt.ExpiresAt = time.UnixMilli(expires)
	if used.Valid {
		t := time.UnixMilli(used.Int64)
		rt.UsedAt = &t
	}
	if revoked.Valid {
		t := time.UnixMilli(revoked.Int64)
		rt.RevokedAt = &t
	}
	return rt, nil
}

// markUsed spends a refresh token. It reports false when another request
// spent it first, which the caller treats as reuse.
func (s store) markUsed(ctx context.Context, tx *sql.Tx, hash string, now time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL`,
		now.UnixMilli(), hash)
	if err != nil {
		return false, fmt.Errorf("spending refresh token: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("spending refresh token: %w", err)
	}
	return n == 1, nil
}

func (s store) revokeFamily(ctx context.Context, tx *sql.Tx, family string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL`,
		now.UnixMilli(), family)
	if err != nil {
		return fmt.Errorf("revoking refresh tokens: %w", err)
	}
	return nil
}

func (s store) revokeUser(ctx context.Context, tx *sql.Tx, userID string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL`,
		now.UnixMilli(), userID)
	if err != nil {
		return fmt.Errorf("revoking refresh tokens: %w", err)
	}
	return nil
}

// signingKey is a stored key that signs access tokens: its id and the
// base64 of its Ed25519 seed, sealed when users has a key-encryption key
// (see seal.go).
type signingKey struct {
	KID  string
	Seed string
}

// insertSigningKey stores a new signing key; the newest one signs.
func (s store) insertSigningKey(ctx context.Context, k signingKey, now time.Time) error {
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (kid, seed, created_at) VALUES ($1, $2, $3)`,
			k.KID, k.Seed, now.UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("storing the signing key: %w", err)
	}
	return nil
}

// resealSigningKey replaces a key's stored seed, if it is still old: a
// replica that resealed it first wins, and either form opens.
func (s store) resealSigningKey(ctx context.Context, kid, old, sealed string) error {
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE signing_keys SET seed = $1 WHERE kid = $2 AND seed = $3`, sealed, kid, old)
		return err
	})
	if err != nil {
		return fmt.Errorf("sealing signing key %s: %w", kid, err)
	}
	return nil
}

// signingKeys returns the unretired signing keys, oldest first.
func (s store) signingKeys(ctx context.Context) ([]signingKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT kid, seed FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at, kid`)
	if err != nil {
		return nil, fmt.Errorf("reading signing keys: %w", err)
	}
	defer rows.Close()
	var keys []signingKey
	for rows.Next() {
		var k signingKey
		if err := rows.Scan(&k.KID, &k.Seed); err != nil {
			return nil, fmt.Errorf("reading signing keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading signing keys: %w", err)
	}
	return keys, nil
}
