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
