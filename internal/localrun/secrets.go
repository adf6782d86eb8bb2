package localrun

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/service"
)

// serviceKeys loads the service-identity keys of this data directory,
// making them on the first run. The file is readable by its owner only.
func serviceKeys(data string, specs []service.Spec) (map[string]string, string, error) {
	path := filepath.Join(data, "service-keys.json")
	var stored struct {
		Seeds   map[string]string `json:"seeds"`
		Publics string            `json:"publics"`
	}
	b, err := os.ReadFile(path)
	if err == nil && json.Unmarshal(b, &stored) == nil {
		complete := true
		for _, s := range specs {
			if stored.Seeds[s.Name] == "" {
				complete = false
			}
		}
		if complete {
			return stored.Seeds, stored.Publics, nil
		}
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	stored.Seeds, stored.Publics, err = auth.GenerateServiceKeys(names)
	if err != nil {
		return nil, "", fmt.Errorf("making service keys: %w", err)
	}
	b, err = json.Marshal(stored)
	if err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, "", fmt.Errorf("writing %s: %w", path, err)
	}
	return stored.Seeds, stored.Publics, nil
}

// usersKEK returns the file of users' key-encryption key, which seals
// its token-signing keys in users.db, making it on the first run (mode
// 0600). A copy of users.db alone then signs nothing; deleting the file
// makes users refuse to start, since it can no longer open its keys.
func usersKEK(data string) (string, error) {
	path := filepath.Join(data, "users-kek")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making users' key-encryption key: %w", err)
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(b)+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}

// natsAuth is the broker's side of `run`: each service's NATS user and
// the monitor's (the collector's stream report).
type natsAuth struct {
	// seeds are the users' NKey seeds, by name: each service gets its own.
	seeds map[string]string
	// users is what the broker admits, written to usersFile for the
	// broker's own process.
	users     []broker.User
	usersFile string
}

// natsUsers loads the NATS keys of this data directory, making them on
// the first run (nats-keys.json, readable by its owner only), and writes
// the users they make, with their permissions, to nats-users.json.
// Permissions follow the specs at every run, so a changed topology needs
// no new keys.
func natsUsers(data string, specs []service.Spec) (natsAuth, error) {
	path := filepath.Join(data, "nats-keys.json")
	var stored struct {
		Seeds map[string]string `json:"seeds"`
	}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return natsAuth{}, fmt.Errorf("reading %s: %w", path, err)
	}
	if err == nil {
		if err := json.Unmarshal(b, &stored); err != nil {
			return natsAuth{}, fmt.Errorf("reading %s: %w", path, err)
		}
	}
	if stored.Seeds == nil {
		stored.Seeds = map[string]string{}
	}
	var roles []broker.Role
	names := []string{broker.Monitor}
	for _, s := range specs {
		if len(s.Publishes) == 0 && len(s.Consumes) == 0 {
			continue // it never connects: no user
		}
		names = append(names, s.Name)
		roles = append(roles, s.BrokerRole())
	}
	publics := map[string]string{}
	changed := false
	for _, name := range names {
		pub, err := broker.PublicKey(stored.Seeds[name])
		if stored.Seeds[name] == "" || err != nil {
			seed, p, err := broker.NewUserKey()
			if err != nil {
				return natsAuth{}, err
			}
			stored.Seeds[name], pub, changed = seed, p, true
		}
		publics[name] = pub
	}
	if changed {
		if b, err = json.Marshal(stored); err != nil {
			return natsAuth{}, err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return natsAuth{}, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	users, err := broker.Users(roles, publics)
	if err != nil {
		return natsAuth{}, err
	}
	auth := natsAuth{seeds: stored.Seeds, users: users, usersFile: filepath.Join(data, "nats-users.json")}
	if b, err = json.MarshalIndent(users, "", "  "); err != nil {
		return natsAuth{}, err
	}
	if err := os.WriteFile(auth.usersFile, b, 0o600); err != nil {
		return natsAuth{}, fmt.Errorf("writing %s: %w", auth.usersFile, err)
	}
	return auth, nil
}

// credential is name's NATS credential: its own seed, or none when the
// broker is an outside one, which has none of these users.
func (a natsAuth) credential(name string) broker.Credential {
	return broker.Credential{Name: name, Seed: a.seeds[name]}
}

type adminAccount struct {
	email, password string
	generated       bool
}

// adminCredentials decides the admin account. An operator's
// MICROSHOP_ADMIN_EMAIL/PASSWORD go straight to users; otherwise the
// first run (no users database yet) makes a password and prints it once.
func adminCredentials(getenv func(string) string, data string) (adminAccount, error) {
	if getenv("MICROSHOP_ADMIN_EMAIL") != "" {
		return adminAccount{email: getenv("MICROSHOP_ADMIN_EMAIL")}, nil
	}
	if _, err := os.Stat(filepath.Join(data, "users.db")); err == nil {
		return adminAccount{}, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return adminAccount{}, err
	}
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		return adminAccount{}, err
	}
	return adminAccount{email: "admin@microshop.local", password: base64.RawURLEncoding.EncodeToString(b), generated: true}, nil
}

// newSecret makes a random secret for this run of the system: the
// gateway's proof to users (--proxy-secret), and the tokens that open the
// mailbox's and the trace collector's APIs. Nothing keeps them; a new run
// makes new ones.
func newSecret() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making a secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
