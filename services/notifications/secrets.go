package notifications

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// signingKey is the service's webhook signing key. An endpoint's secret is
// derived from it and the endpoint's id, so the database holds no secret:
// a copy of it lets nobody forge a signature. Every replica needs the same
// key: they share it through --data (a file made on the first start) or
// through --webhook-signing-key.
type signingKey []byte

const keyFile = "notifications.webhook-key"

// loadSigningKey decodes configured (base64, 32 bytes or more) or, when it
// is empty, reads the key file in dataDir, making it on the first start.
func loadSigningKey(configured, dataDir string) (signingKey, error) {
	if configured != "" {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(configured))
		if err != nil || len(k) < 32 {
			return nil, errors.New("--webhook-signing-key must be 32 bytes or more, base64-encoded (e.g. from `openssl rand -base64 32`)")
		}
		return k, nil
	}
	path := filepath.Join(dataDir, keyFile)
	if k, err := readKeyFile(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return k, err
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("making a webhook signing key: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("making the data directory: %w", err)
	}
	// Write a temporary file, then link it into place: a link never
	// replaces a file, so of two replicas starting on one --data the
	// second finds the first one's key and uses it.
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid()) + rand.Text()[:6]
	if err := os.WriteFile(tmp, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing the webhook signing key: %w", err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("writing the webhook signing key: %w", err)
	}
	return readKeyFile(path)
}

func readKeyFile(path string) (signingKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) < 32 {
		return nil, fmt.Errorf("%s does not hold a webhook signing key (base64, 32 bytes or more)", path)
	}
	return k, nil
}

func (k signingKey) mac(label string) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// secret is the signing secret of a webhook endpoint.
func (k signingKey) secret(endpointID string) string {
	return "whsec_" + base64.RawURLEncoding.EncodeToString(k.mac("webhook-endpoint:"+endpointID))
}

// fingerprint names the key without revealing it.
func (k signingKey) fingerprint() string { return hex.EncodeToString(k.mac("fingerprint")[:8]) }

const fingerprintSetting = "webhook_signing_key_fingerprint"

// checkSigningKey makes sure this replica signs with the key the stored
// endpoints' secrets came from. With another key every signature would
// fail at the receivers; better to refuse to start and say why. A database
// without endpoints adopts the new key.
func checkSigningKey(ctx context.Context, st store, k signingKey) error {
	stored, err := st.initSetting(ctx, fingerprintSetting, k.fingerprint())
	if err != nil {
		return err
	}
	if stored == k.fingerprint() {
		return nil
	}
	n, err := st.countEndpoints(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("the webhook signing key (fingerprint %s) is not the one the %d stored webhook endpoints were made with (fingerprint %s): "+
			"give this replica the same --webhook-signing-key (or the same --data) as the others", k.fingerprint(), n, stored)
	}
	return st.setSetting(ctx, fingerprintSetting, k.fingerprint())
}
