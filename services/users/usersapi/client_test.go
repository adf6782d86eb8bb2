package usersapi_test

import (
	"context"
	"errors"
	"testing"

	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/openapi/openapitest"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/users"
	"github.com/microshop/microshop/services/users/usersapi"
)

// The client against the real users service, behind the OpenAPI checker:
// every request and answer must match the published contract.
func TestClient(t *testing.T) {
	shop := servicetest.NewShop(t, users.Spec(), servicetest.ShopOptions{})
	url, _ := openapitest.Proxy(t, users.OpenAPI(), shop.Users.URL)
	c := usersapi.NewClient(url, client.Options{}, nil)
	ctx := context.Background()

	u, err := c.Register(ctx, usersapi.Registration{Email: "ada@example.com", Password: "long enough password", Name: "Ada"})
	if err != nil || u.ID == "" || u.Email != "ada@example.com" {
		t.Fatalf("register: %+v %v", u, err)
	}
	if _, err := c.Register(ctx, usersapi.Registration{Email: "ada@example.com", Password: "long enough password", Name: "Ada"}); !errors.Is(err, usersapi.ErrEmailTaken) {
		t.Fatalf("register again: %v", err)
	}
	if _, err := c.Register(ctx, usersapi.Registration{Email: "not an email", Password: "x", Name: ""}); problem.From(err) == nil || problem.From(err).Status != 422 {
		t.Fatalf("register invalid: %v", err)
	}
	if _, err := c.Login(ctx, usersapi.Credentials{Email: "ada@example.com", Password: "wrong password"}); !errors.Is(err, usersapi.ErrUnauthorized) {
		t.Fatalf("login with a wrong password: %v", err)
	}
	tok, err := c.Login(ctx, usersapi.Credentials{Email: "ada@example.com", Password: "long enough password"})
	if err != nil || tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("login: %+v %v", tok, err)
	}
	me, err := c.Me(ctx, tok.AccessToken)
	if err != nil || me.ID != u.ID {
		t.Fatalf("me: %+v %v", me, err)
	}
	if _, err := c.Me(ctx, ""); !errors.Is(err, usersapi.ErrUnauthorized) {
		t.Fatalf("me without a token: %v", err)
	}
	again, err := c.Refresh(ctx, tok.RefreshToken)
	if err != nil || again.AccessToken == "" || again.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %+v %v", again, err)
	}
	if _, err := c.Refresh(ctx, tok.RefreshToken); !errors.Is(err, usersapi.ErrUnauthorized) {
		t.Fatalf("a refresh token used twice: %v", err)
	}
}
