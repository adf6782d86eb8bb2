package auth

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// KeySource finds the public key that signed a token.
type KeySource interface {
	Key(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

// ErrUnknownKey means no known key has the token's key id.
var ErrUnknownKey = errors.New("unknown signing key")

// RemoteKeySet is the JWKS of the users service as other services see it:
// fetched over HTTP, kept in memory (and in a cache file when one is
// given), refreshed in the background. Verification keeps working while
// users is down, with the keys it last saw.
type RemoteKeySet struct {
	urls      []string
	client    *http.Client
	log       *slog.Logger
	cacheFile string

	mu        sync.RWMutex
	keys      map[string]ed25519.PublicKey
	lastFetch time.Time
	// lastTry is when Key last refreshed for an unknown kid, whether or
	// not that worked, so made-up kids cannot make a fetch each.
	lastTry  time.Time
	fetching sync.Mutex
}

// NewRemoteKeySet returns a key set fetched from url, or from the first of
// a comma-separated list of URLs (users' replicas) that answers. When cacheFile is not
// empty the last good JWKS is kept there, so a service that restarts
// while users is down still verifies tokens.
func NewRemoteKeySet(url, cacheFile string, client *http.Client, log *slog.Logger) *RemoteKeySet {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	var urls []string
	for _, u := range strings.Split(url, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	ks := &RemoteKeySet{urls: urls, client: client, log: log, cacheFile: cacheFile}
	if cacheFile != "" {
		if b, err := os.ReadFile(cacheFile); err == nil {
			var set JWKS
			if json.Unmarshal(b, &set) == nil {
				if keys, err := set.keys(); err == nil {
					ks.keys = keys
				}
			}
		}
	}
	return ks
}

// Run refreshes the keys every interval until ctx is done, and retries
// every few seconds while it has none.
func (ks *RemoteKeySet) Run(ctx context.Context, interval time.Duration) {
	for {
		wait := interval
		if err := ks.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			ks.log.Warn("refreshing signing keys failed; keeping the ones we have", "urls", ks.urls, "err", err)
			if !ks.Ready() {
				wait = 2 * time.Second
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Ready reports whether any key is known.
func (ks *RemoteKeySet) Ready() bool {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return len(ks.keys) > 0
}

// Refresh fetches the JWKS now, from the first URL that answers.
func (ks *RemoteKeySet) Refresh(ctx context.Context) error {
	ks.fetching.Lock()
	defer ks.fetching.Unlock()
	var errs []error
	for _, u := range ks.urls {
		body, err := ks.fetch(ctx, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var set JWKS
		if err := json.Unmarshal(body, &set); err != nil {
			return fmt.Errorf("decoding jwks: %w", err)
		}
		keys, err := set.keys()
		if err != nil {
			return err
		}
		ks.mu.Lock()
		ks.keys = keys
		ks.lastFetch = time.Now()
		ks.mu.Unlock()
		if ks.cacheFile != "" {
			if err := writeFileAtomic(ks.cacheFile, body); err != nil {
				ks.log.Warn("caching signing keys failed", "file", ks.cacheFile, "err", err)
			}
		}
		return nil
	}
	if len(errs) == 0 {
		return errors.New("fetching jwks: no URL to fetch it from")
	}
	return errors.Join(errs...)
}

func (ks *RemoteKeySet) fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetching jwks: %w", err)
	}
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching jwks: %s answered %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("fetching jwks: %w", err)
	}
	return body, nil
}

// Key returns the key with id kid. An unknown kid may be a key users has
// just rotated in, so it triggers one refresh, at most every ten seconds.
func (ks *RemoteKeySet) Key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	ks.mu.RLock()
	k, ok := ks.keys[kid]
	recent := time.Since(ks.lastFetch) < 10*time.Second || time.Since(ks.lastTry) < 10*time.Second
	ks.mu.RUnlock()
	if ok {
		return k, nil
	}
	if recent {
		return nil, ErrUnknownKey
	}
	ks.mu.Lock()
	ks.lastTry = time.Now()
	ks.mu.Unlock()
	if err := ks.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("%w (and refreshing the keys failed: %v)", ErrUnknownKey, err)
	}
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	if k, ok := ks.keys[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// StaticKeys is a fixed key set; users verifies its own tokens with it.
type StaticKeys func() map[string]ed25519.PublicKey

// Key implements KeySource.
func (s StaticKeys) Key(_ context.Context, kid string) (ed25519.PublicKey, error) {
	if k, ok := s()[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}
