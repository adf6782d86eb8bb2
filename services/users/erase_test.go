package users_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/users"
	"github.com/microshop/microshop/services/users/usersapi"
)

// A customer erases their account with its password: login, refresh and
// the profile fail from then on, the email is free again, and
// users.erased (the id only) goes out through the outbox.
func TestEraseMe(t *testing.T) {
	url, shop, _ := start(t)
	var u usersapi.User
	servicetest.Register(t, url, "grace@example.com", "cobol compiler", "Grace Hopper").JSON(t, &u)
	tok := servicetest.Login(t, url, "grace@example.com", "cobol compiler")

	if r := servicetest.Call(t, "DELETE", url+"/api/users/me", tok.AccessToken, map[string]string{"password": "wrong password!"}); r.Status != 422 {
		t.Fatalf("erasing with a wrong password: %d %s", r.Status, r.Body)
	}
	if r := servicetest.Call(t, "DELETE", url+"/api/users/me", tok.AccessToken, map[string]string{}); r.Status != 422 {
		t.Fatalf("erasing without a password: %d %s", r.Status, r.Body)
	}
	if r := servicetest.Call(t, "DELETE", url+"/api/users/me", "", map[string]string{"password": "cobol compiler"}); r.Status != 401 {
		t.Fatalf("erasing without a token: %d %s", r.Status, r.Body)
	}
	if r := servicetest.Call(t, "DELETE", url+"/api/users/me", tok.AccessToken, map[string]string{"password": "cobol compiler"}); r.Status != 204 {
		t.Fatalf("erasing: %d %s", r.Status, r.Body)
	}

	if r := servicetest.Call(t, "POST", url+"/api/users/login", "", map[string]string{"email": "grace@example.com", "password": "cobol compiler"}); r.Status != 401 {
		t.Errorf("login after erasure: %d %s", r.Status, r.Body)
	}
	if r := servicetest.Call(t, "POST", url+"/api/users/refresh", "", map[string]string{"refresh_token": tok.RefreshToken}); r.Status != 401 {
		t.Errorf("refresh after erasure: %d %s", r.Status, r.Body)
	}
	if r := servicetest.Call(t, "GET", url+"/api/users/me", tok.AccessToken, nil); r.Status != 404 || strings.Contains(string(r.Body), "grace") {
		t.Errorf("profile after erasure: %d %s", r.Status, r.Body)
	}
	// The tombstone's placeholder email is no way in.
	if r := servicetest.Call(t, "POST", url+"/api/users/login", "", map[string]string{"email": "erased:" + u.ID, "password": "x"}); r.Status != 401 {
		t.Errorf("login with the tombstone's email: %d %s", r.Status, r.Body)
	}
	if r := servicetest.Call(t, "DELETE", url+"/api/users/me", tok.AccessToken, map[string]string{"password": "cobol compiler"}); r.Status != 404 {
		t.Errorf("erasing again: %d %s", r.Status, r.Body)
	}
	// The address is free: a new account, with a new id.
	var again usersapi.User
	servicetest.Register(t, url, "grace@example.com", "cobol compiler", "Grace").JSON(t, &again)
	if again.ID == u.ID || again.ID == "" {
		t.Errorf("registering the email again: %+v", again)
	}

	var erased []usersapi.UserErased
	evs := shop.Events(t, "users", func(es []events.Event) bool {
		erased = erased[:0]
		for _, e := range es {
			var b usersapi.UserErased
			if e.Type == b.EventType() && e.Decode(&b) == nil {
				erased = append(erased, b)
			}
		}
		return len(erased) > 0
	})
	if len(erased) != 1 || erased[0].UserID != u.ID || erased[0].ErasedAt.IsZero() {
		t.Fatalf("users.erased events: %+v", erased)
	}
	for _, e := range evs {
		if e.Type == "users.erased" && strings.Contains(string(e.Data), "grace") {
			t.Errorf("users.erased carries personal data: %s", e.Data)
		}
	}
}

// Erasing takes the password, so it counts like a login: a stolen access
// token cannot be used to guess the password.
func TestEraseMeIsRateLimited(t *testing.T) {
	url, _, _ := start(t, "--login-rate-account", "2", "--login-rate-ip", "100")
	servicetest.Register(t, url, "ada@example.com", "analytical engine", "Ada")
	tok := servicetest.Login(t, url, "ada@example.com", "analytical engine")
	statuses := []int{}
	for range 3 {
		r := servicetest.Call(t, "DELETE", url+"/api/users/me", tok.AccessToken, map[string]string{"password": "guess number n"})
		statuses = append(statuses, r.Status)
	}
	// The login took one of the two checks of this account from here.
	if statuses[0] != 422 || statuses[1] != 429 || statuses[2] != 429 {
		t.Fatalf("statuses of three guesses: %v", statuses)
	}
}

// An admin erases any account without its password; a customer may not;
// erasing twice is no error, an unknown id is a 404.
func TestAdminErasesAnAccount(t *testing.T) {
	url, shop, _ := start(t)
	var u usersapi.User
	servicetest.Register(t, url, "alan@example.com", "turing machine", "Alan").JSON(t, &u)
	if r := servicetest.Call(t, "DELETE", url+"/api/users/accounts/"+u.ID, shop.Customer, nil); r.Status != 403 {
		t.Fatalf("a customer erasing another account: %d %s", r.Status, r.Body)
	}
	for i := range 2 {
		if r := servicetest.Call(t, "DELETE", url+"/api/users/accounts/"+u.ID, shop.Admin, nil); r.Status != 204 {
			t.Fatalf("admin erasing (%d): %d %s", i, r.Status, r.Body)
		}
	}
	for _, id := range []string{"01hzy3v6q8m4k2n7p5r9s1t3w5", "not-an-id"} {
		if r := servicetest.Call(t, "DELETE", url+"/api/users/accounts/"+id, shop.Admin, nil); r.Status != 404 {
			t.Errorf("erasing %s: %d %s", id, r.Status, r.Body)
		}
	}
	if r := servicetest.Call(t, "POST", url+"/api/users/login", "", map[string]string{"email": "alan@example.com", "password": "turing machine"}); r.Status != 401 {
		t.Errorf("login after erasure: %d %s", r.Status, r.Body)
	}
	evs := shop.Events(t, "users", func(es []events.Event) bool { return len(es) >= 3 })
	n := 0
	for _, e := range evs {
		if e.Type == "users.erased" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d users.erased events for one account erased twice", n)
	}
}

// Notifications, and only notifications, reads a customer's address
// through the internal route; an erased customer has none.
func TestInternalContact(t *testing.T) {
	shop := servicetest.NewShop(t, users.Spec(), servicetest.ShopOptions{Keys: []string{"notifications", "orders"}})
	url := shop.Users.URL
	var u usersapi.User
	servicetest.Register(t, url, "ada@example.com", "analytical engine", "Ada").JSON(t, &u)
	path := url + "/internal/users/" + u.ID
	if r := servicetest.Call(t, "GET", path, "", nil); r.Status != 401 {
		t.Errorf("without a credential: %d", r.Status)
	}
	if r := servicetest.Call(t, "GET", path, shop.Token(t, "orders", "users"), nil); r.Status != 403 {
		t.Errorf("as orders: %d", r.Status)
	}
	if r := servicetest.Call(t, "GET", path, shop.Customer, nil); r.Status != 401 {
		t.Errorf("with a customer's access token: %d", r.Status)
	}
	r := servicetest.Call(t, "GET", path, shop.Token(t, "notifications", "users"), nil)
	var c usersapi.Contact
	if err := json.Unmarshal(r.Body, &c); r.Status != 200 || err != nil || c.Email != "ada@example.com" || c.ID != u.ID || c.Name != "Ada" {
		t.Fatalf("as notifications: %d %s", r.Status, r.Body)
	}
	if r := servicetest.Call(t, "DELETE", url+"/api/users/accounts/"+u.ID, shop.Admin, nil); r.Status != 204 {
		t.Fatalf("erasing: %d %s", r.Status, r.Body)
	}
	if r := servicetest.Call(t, "GET", path, shop.Token(t, "notifications", "users"), nil); r.Status != 404 || strings.Contains(string(r.Body), "ada") {
		t.Errorf("an erased customer: %d %s", r.Status, r.Body)
	}
}
