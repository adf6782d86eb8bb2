package users

import (
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/platform/httpjson"
)

// FuzzRegistration feeds arbitrary bodies through the strict decoder and
// the validator: neither may panic, and a body is either refused with a
// 4xx or yields a registration whose fields are all valid.
func FuzzRegistration(f *testing.F) {
	for _, s := range []string{
		`{"email":"a@b.co","password":"123456789012","name":"A"}`,
		`{"email":"a@b.co","password":"short","name":"A"}`,
		`{"email":"","password":"","name":""}`,
		`{"email":"a@b.co","password":"123456789012","name":"A","x":1}`,
		`{"email":1e400}`, `[]`, `null`, `{}{}`, `{"name":"\u0000"}`,
		`{"email":"Ada <a@b.co>","password":"123456789012","name":"A"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var r Registration
		if p := httpjson.DecodeBytes(strings.NewReader(body), &r); p != nil {
			if p.Status < 400 || p.Status > 499 {
				t.Fatalf("decode answered %d", p.Status)
			}
			return
		}
		if errs := r.Valid(); len(errs) == 0 {
			if _, err := normalEmail(r.Email); err != nil {
				t.Fatalf("valid registration with a bad email %q", r.Email)
			}
			if len([]rune(r.Password)) < minPassword {
				t.Fatalf("valid registration with a short password")
			}
		}
	})
}

func FuzzCredentials(f *testing.F) {
	f.Add(`{"email":"a@b.co","password":"123456789012"}`)
	f.Add(`{"email":"a@b.co"}`)
	f.Add(`{"password":["x"]}`)
	f.Fuzz(func(t *testing.T, body string) {
		var c Credentials
		if p := httpjson.DecodeBytes(strings.NewReader(body), &c); p != nil && (p.Status < 400 || p.Status > 499) {
			t.Fatalf("decode answered %d", p.Status)
		}
		_ = c.Valid()
	})
}

func TestPasswordHashRoundTrip(t *testing.T) {
	h, err := hashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := checkPassword(h, "correct horse battery"); !ok || err != nil {
		t.Fatalf("the right password: %v %v", ok, err)
	}
	if ok, _ := checkPassword(h, "correct horse batterY"); ok {
		t.Fatal("a wrong password matched")
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash format %q", h)
	}
	if _, err := checkPassword("$bcrypt$junk", "x"); err == nil {
		t.Fatal("a malformed hash was accepted")
	}
	if ok, err := checkPassword(dummyHash, "anything"); ok || err != nil {
		t.Fatalf("the dummy hash must parse and match nothing: %v %v", ok, err)
	}
}
