package broker_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/topology"
)

// TestServerConfig reads the file ServerConfig writes with nats-server's
// own configuration parser: every user is there by its NKey, with the
// permissions it has on an embedded broker, and nobody else.
func TestServerConfig(t *testing.T) {
	publics := map[string]string{}
	for _, name := range append(topology.Names(), broker.Monitor) {
		_, pub, err := broker.NewUserKey()
		if err != nil {
			t.Fatal(err)
		}
		publics[name] = pub
	}
	users, err := broker.Users(roles(), publics)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := broker.ServerConfig(users)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server cannot read the configuration: %v\n%s", err, conf)
	}
	if len(opts.Nkeys) != len(users) || len(opts.Users) != 0 {
		t.Fatalf("the configuration admits %d nkey users and %d others, want the %d users", len(opts.Nkeys), len(opts.Users), len(users))
	}
	for _, u := range users {
		i := slices.IndexFunc(opts.Nkeys, func(n *server.NkeyUser) bool { return n.Nkey == u.NKey })
		if i < 0 {
			t.Errorf("user %s is missing", u.Name)
			continue
		}
		p := opts.Nkeys[i].Permissions
		if p == nil || p.Publish == nil || p.Subscribe == nil {
			t.Errorf("user %s has no permissions: it could do anything", u.Name)
			continue
		}
		same := func(got *server.SubjectPermission, want broker.Subjects) bool {
			if len(want.Allow) == 0 && len(want.Deny) == 0 {
				// Nothing allowed is written as everything denied.
				return len(got.Allow) == 0 && slices.Equal(got.Deny, []string{">"})
			}
			return slices.Equal(got.Allow, want.Allow) && slices.Equal(got.Deny, want.Deny)
		}
		if !same(p.Publish, u.Permissions.Publish) || !same(p.Subscribe, u.Permissions.Subscribe) {
			t.Errorf("user %s: permissions %+v %+v, want %+v", u.Name, *p.Publish, *p.Subscribe, u.Permissions)
		}
	}
	if _, err := broker.ServerConfig(nil); err == nil {
		t.Error("ServerConfig(no users) = nil error: it would admit anyone")
	}
}
