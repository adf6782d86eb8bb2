package users

import (
	"context"
	"embed"
	"fmt"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/ratelimit"
	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/services/users/usersapi"
)

//go:embed migrations openapi.yaml
var files embed.FS

// OpenAPI is the API contract of users, from its Spec.
func OpenAPI() *openapi.Document { return Spec().OpenAPI() }

// Spec describes users to the service runtime.
func Spec() service.Spec {
	return service.Spec{
		Name:         "users",
		Summary:      "users: accounts, login, access tokens (Ed25519 JWT) and their JWKS.",
		Files:        files,
		Publishes:    []events.Body{usersapi.UserRegistered{}, usersapi.UserErased{}},
		IssuesTokens: true,
		// Password hashing holds argon2's memory, all of it live, in
		// every slot at once at the busiest: a memory limit below that
		// would run the GC without pause and stall logins.
		MemoryHeadroom: hashingSlots * argonMemory << 10,
		Setup: func(f *config.Flags) service.Build {
			var (
				accessTTL     = f.Duration("access-ttl", 15*time.Minute, "lifetime of access tokens")
				refreshTTL    = f.Duration("refresh-ttl", 30*24*time.Hour, "lifetime of refresh tokens")
				adminEmail    = f.String("admin-email", "", "make sure an admin account with this email exists")
				adminPassword = f.String("admin-password", "", "the admin account's password (12 characters or more)")
				loginAccount  = f.Int("login-rate-account", 10, "password checks (logins, password changes) a minute for one account from one client address (0: unlimited)")
				loginIP       = f.Int("login-rate-ip", 60, "password checks, token refreshes and logouts a minute from one client address (0: unlimited)")
				registerIP    = f.Int("register-rate-ip", 30, "registrations a minute per client address (0: unlimited)")
				proxies       = f.String("trusted-proxies", "", "comma-separated CIDRs of proxies (an ingress) whose X-Forwarded-For names the client; loopback is no proof on a shared machine, see --proxy-secret")
				kekFile       = f.String("key-encryption-key-file", "", "file holding the key-encryption key (base64 of 32 bytes) that seals the token-signing keys in the database (microshop run makes <data>/users-kek)")
				kek           = f.String("key-encryption-key", "", "the key-encryption key itself (base64 of 32 bytes), e.g. from a Secret; --key-encryption-key-file wins")
				previousKEK   = f.String("previous-key-encryption-key", "", "comma-separated earlier key-encryption keys: keys sealed with one are opened and sealed again with the current one (for rotating)")
				proxySecret   = f.String("proxy-secret", "", "secret the gateway sends in "+ratelimit.ProxySecretHeader+"; a request carrying it has its X-Forwarded-For believed (microshop run sets it)")
			)
			return func(ctx context.Context, rt *service.Runtime) error {
				trusted, err := ratelimit.ParsePrefixes(*proxies)
				if err != nil {
					return fmt.Errorf("--trusted-proxies: %w", err)
				}
				current := *kek
				if *kekFile != "" {
					if current, err = ReadKEKFile(*kekFile); err != nil {
						return fmt.Errorf("--key-encryption-key-file: %w", err)
					}
				}
				s, err := New(ctx, Config{AccessTTL: *accessTTL, RefreshTTL: *refreshTTL,
					AdminEmail: *adminEmail, AdminPassword: *adminPassword,
					KEK: current, PreviousKEKs: strings.Split(*previousKEK, ",")}, Deps{DB: rt.DB, Log: rt.Log})
				if err != nil {
					return err
				}
				Routes(rt.Server.Router, s, OpenAPI(), Limits{
					AccountPerIP: *loginAccount, PerIP: *loginIP, RegisterPerIP: *registerIP,
					Proxies: ratelimit.Proxies{Prefixes: trusted, Secret: *proxySecret},
				}, rt.ServiceKeys, rt.Log)
				return nil
			}
		},
	}
}
