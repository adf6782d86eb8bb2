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
