// Package usersapi is the contract of users, what other services may know of it: its event
// types and the shapes of its public API. Nothing here reaches users'
// internals or database.
package usersapi

import "time"

// UserRegistered is published when an account is created.
type UserRegistered struct {
	UserID       string    `json:"user_id"`
	Email        string    `json:"email"`
	Name         string    `json:"name"`
	RegisteredAt time.Time `json:"registered_at"`
}

func (UserRegistered) EventType() string { return "users.registered" }
func (UserRegistered) EventVersion() int { return 1 }

// UserErased is published when an account is erased: its owner asked
// (DELETE /api/users/me) or an admin did. It carries only the opaque id;
// every service that keeps something personal about the customer erases
// it on this event (docs/privacy.md).
type UserErased struct {
	UserID   string    `json:"user_id"`
	ErasedAt time.Time `json:"erased_at"`
}

func (UserErased) EventType() string { return "users.erased" }
func (UserErased) EventVersion() int { return 1 }

// Erasure is the body of DELETE /api/users/me: the account's password,
// so a stolen access token alone cannot erase it.
type Erasure struct {
	Password string `json:"password"`
}

// Contact is what GET /internal/users/{id} answers: where to write to a
// customer. Only notifications may ask, for a customer it has not yet
// learned of from users.registered.
type Contact struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

// User is a profile as the API returns it.
type User struct {
	ID    string   `json:"id"`
	Email string   `json:"email"`
	Name  string   `json:"name"`
	Roles []string `json:"roles,omitempty"`
}

// Registration is a request to open an account.
type Registration struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

// Credentials are what a login sends.
type Credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// RefreshRequest trades a refresh token for new tokens.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// Tokens is the answer to a login or a refresh.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}
