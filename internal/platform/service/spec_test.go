package service

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/microshop/microshop/internal/platform/events"
)

func TestASpecsFilesGiveItsMigrationsAndContract(t *testing.T) {
	withFiles := Spec{Name: "thing", Files: fstest.MapFS{
		"migrations/00001_thing.sql": {Data: []byte("-- +goose Up\nCREATE TABLE thing (id TEXT);\n")},
		"openapi.yaml":               {Data: []byte("openapi: 3.0.3\ninfo: {title: thing, version: '1'}\npaths: {}\n")},
	}}
	if m := withFiles.Migrations(); m == nil {
		t.Error("no migrations from a Spec whose files have them")
	} else if _, err := m.Open("00001_thing.sql"); err != nil {
		t.Errorf("the migrations are not the migrations/ folder: %v", err)
	}
	if withFiles.OpenAPI() == nil {
		t.Error("no OpenAPI document from a Spec whose files have one")
	}
	none := Spec{Name: "gateway"}
	if none.Migrations() != nil || none.OpenAPI() != nil {
		t.Error("a Spec without files has migrations or a document")
	}
	onlyDoc := Spec{Name: "doc", Files: fstest.MapFS{"openapi.yaml": withFiles.Files.(fstest.MapFS)["openapi.yaml"]}}
	if onlyDoc.Migrations() != nil {
		t.Error("a Spec without migrations/ keeps a database")
	}
}

func TestEveryServiceButTheIssuerNeedsUsers(t *testing.T) {
	if got := (Spec{Calls: []string{"inventory"}}).Needs(); strings.Join(got, ",") != "inventory,users" {
		t.Errorf("a caller of inventory needs %v", got)
	}
	if got := (Spec{Calls: []string{"users", "orders"}}).Needs(); strings.Join(got, ",") != "users,orders" {
		t.Errorf("a caller of users and orders needs %v", got)
	}
	if got := (Spec{IssuesTokens: true}).Needs(); len(got) != 0 {
		t.Errorf("the issuer needs %v", got)
	}
}

// The consumers a service runs must be the ones its Spec declares, or
// the system's picture would lie.
func TestConsumersMustMatchTheSpec(t *testing.T) {
	spec := Spec{Name: "reports", Consumes: []string{"orders.confirmed", "orders.rejected"}}
	run := func(subjects ...string) error {
		rt := &Runtime{Name: spec.Name, spec: spec}
		for _, s := range subjects {
			rt.Consumer(&events.Consumer{Name: events.DurableName(spec.Name, s), Stream: events.StreamName(events.Owner(s)), Subjects: []string{s}})
		}
		return rt.checkConsumers()
	}
	if err := run("orders.confirmed", "orders.rejected"); err != nil {
		t.Errorf("the declared consumers: %v", err)
	}
	if err := run("orders.confirmed", "orders.rejected", "payments.failed"); err == nil || !strings.Contains(err.Error(), "payments.failed") {
		t.Errorf("an undeclared consumer: %v", err)
	}
	if err := run("orders.confirmed"); err == nil || !strings.Contains(err.Error(), "orders.rejected") {
		t.Errorf("a declared subject nobody reads: %v", err)
	}
}

// The broker's permissions are made from the durables' names and the
// subjects' owners, so a consumer named otherwise, or reading a subject
// from another stream, is refused at start.
func TestConsumersMustBeNamedAsTheBrokerAdmitsThem(t *testing.T) {
	spec := Spec{Name: "reports", Consumes: []string{"orders.confirmed"}}
	for _, tc := range []struct {
		c    events.Consumer
		want string
	}{
		{events.Consumer{Name: "reports-orders-confirmed", Stream: "ORDERS"}, ""},
		{events.Consumer{Name: "notifications-orders-confirmed", Stream: "ORDERS"}, "admits it only as reports-orders-confirmed"},
		{events.Consumer{Name: "reports-orders-confirmed", Stream: "INVENTORY"}, "only ORDERS, the stream of its owner"},
	} {
		rt := &Runtime{Name: spec.Name, spec: spec}
		c := tc.c
		c.Subjects = []string{"orders.confirmed"}
		rt.Consumer(&c)
		err := rt.checkConsumers()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s on %s: %v", c.Name, c.Stream, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s on %s: %v, want %q", c.Name, c.Stream, err, tc.want)
		}
	}
}

func TestURLOfAServiceNotCalledIsABug(t *testing.T) {
	u := "http://inventory"
	rt := &Runtime{Name: "orders", urls: map[string]*string{"inventory": &u}}
	if got := rt.URL("inventory"); got != u {
		t.Errorf("URL(inventory) = %q", got)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "payments") {
			t.Errorf("URL of a service not in Calls: %v", r)
		}
	}()
	rt.URL("payments")
}
