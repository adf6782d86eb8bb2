package users

import (
	"context"
	"embed"
	"fmt"
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
		Publishes:    []events.Body{usersapi.UserRegistered{}},
		IssuesTokens: true,
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
				proxySecret   = f.String("proxy-secret", "", "secret the gateway sends in "+ratelimit.ProxySecretHeader+"; a request carrying it has its X-Forwarded-For believed (microshop run sets it)")
			)
			return func(ctx context.Context, rt *service.Runtime) error {
				trusted, err := ratelimit.ParsePrefixes(*proxies)
				if err != nil {
					return fmt.Errorf("--trusted-proxies: %w", err)
				}
				s, err := New(ctx, Config{AccessTTL: *accessTTL, RefreshTTL: *refreshTTL,
					AdminEmail: *adminEmail, AdminPassword: *adminPassword}, Deps{DB: rt.DB, Log: rt.Log})
				if err != nil {
					return err
				}
				Routes(rt.Server.Router, s, OpenAPI(), Limits{
					AccountPerIP: *loginAccount, PerIP: *loginIP, RegisterPerIP: *registerIP,
					Proxies: ratelimit.Proxies{Prefixes: trusted, Secret: *proxySecret},
				}, rt.Log)
				return nil
			}
		},
	}
}
