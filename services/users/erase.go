package users

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/users/usersapi"
)

// Erasure is a customer's request to erase their own account.
type Erasure usersapi.Erasure

// Valid checks that the password is there and not absurdly long.
func (e *Erasure) Valid() []validation.FieldError {
	switch {
	case e.Password == "":
		return []validation.FieldError{{Field: "password", Reason: "is required to erase the account"}}
	case len(e.Password) > maxPassword:
		return []validation.FieldError{{Field: "password", Reason: fmt.Sprintf("must be at most %d bytes", maxPassword)}}
	}
	return nil
}

// EraseMe erases the caller's account once its password is checked:
// an access token alone, which may have been stolen, cannot.
func (s *Service) EraseMe(ctx context.Context, userID string, e Erasure) error {
	u, err := s.store.byID(ctx, userID)
	if err != nil {
		return err
	}
	ok, err := s.check(ctx, u.PasswordHash, e.Password)
	if err != nil {
		return fmt.Errorf("checking the password of %s: %w", u.ID, err)
	}
	if !ok {
		return validation.Errors{{Field: "password", Reason: "is wrong"}}
	}
	erased, err := s.erase(ctx, u.ID)
	if err == nil && !erased {
		return ErrNotFound // erased meanwhile by another request
	}
	return err
}

// EraseAccount is an admin erasing account id. Erasing an account that
// is erased already changes nothing and is no error, so an admin may
// retry; an id that never was an account is ErrNotFound.
func (s *Service) EraseAccount(ctx context.Context, id string) error {
	if !ids.Valid(id) {
		return ErrNotFound
	}
	erased, err := s.erase(ctx, id)
	if err != nil || erased {
		return err
	}
	gone, err := s.store.erased(ctx, id)
	if err != nil {
		return err
	}
	if !gone {
		return ErrNotFound
	}
	return nil
}

// erase overwrites the account's personal data and deletes its refresh
// tokens, and announces users.erased in the same transaction (the
// outbox), so the other services erase what they keep exactly when the
// account is gone. It reports false, and publishes nothing, when the
// account was not live.
func (s *Service) erase(ctx context.Context, id string) (bool, error) {
	now := s.now()
	var erased bool
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if erased, err = s.store.erase(ctx, tx, id, now); err != nil || !erased {
			return err
		}
		_, err = s.outbox.Add(ctx, tx, usersapi.UserErased{UserID: id, ErasedAt: now.UTC()})
		return err
	})
	if err != nil {
		return false, err
	}
	if erased {
		// The id only: the log must not keep what was just erased.
		s.log.InfoContext(ctx, "account erased", "user_id", id)
	}
	return erased, nil
}

// Contact is where to write to customer id, for notifications' internal
// route; an erased account is ErrNotFound.
func (s *Service) Contact(ctx context.Context, id string) (usersapi.Contact, error) {
	if !ids.Valid(id) {
		return usersapi.Contact{}, ErrNotFound
	}
	u, err := s.store.byID(ctx, id)
	if err != nil {
		return usersapi.Contact{}, err
	}
	return usersapi.Contact{ID: u.ID, Email: u.Email, Name: u.Name}, nil
}
