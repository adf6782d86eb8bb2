package notifications

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/services/users/usersapi"
)

//go:embed migrations openapi.yaml
var files embed.FS

// OpenAPI is the API contract of notifications, from its Spec.
func OpenAPI() *openapi.Document { return Spec().OpenAPI() }

// Spec describes notifications to the service runtime.
func Spec() service.Spec {
	return service.Spec{
		Name:    "notifications",
		Summary: "notifications: emails (SMTP) and signed webhooks on the shop's events, each delivered once, with retries.",
		Files:   files,
		Calls:   []string{"users"},
		// users.erased is no webhook's: it is consumed to erase, not notified.
		Consumes: append(EventTypes(), usersapi.UserErased{}.EventType()),
		Setup: func(f *config.Flags) service.Build {
			var (
				smtpURL      = f.String("smtp-url", "smtp://127.0.0.1:8088", "SMTP server: smtp://[user:pass@]host[:port][?starttls=true] (credentials use AUTH PLAIN)")
				smtpTimeout  = f.Duration("smtp-timeout", 30*time.Second, "deadline of one SMTP conversation")
				mailFrom     = f.String("mail-from", "microshop <shop@microshop.local>", "sender of every email")
				adminAlert   = f.String("admin-alert-email", "admin@microshop.local", "where stock alerts go")
				maxTries     = f.Int("max-tries", 8, "tries of a delivery before it is dead")
				retryBase    = f.Duration("retry-base", 2*time.Second, "backoff before the second try; it doubles with each try (full jitter)")
				retryMax     = f.Duration("retry-max", 30*time.Minute, "longest backoff between two tries")
				hookTimeout  = f.Duration("webhook-timeout", 5*time.Second, "deadline of one webhook request; a slower receiver's try fails")
				allowPrivate = f.Bool("webhook-allow-private", false, "let webhooks reach loopback, private and link-local addresses (for receivers on this machine)")
				allowHooks   = f.String("webhook-allow", "", "comma-separated address:port pairs of receivers webhooks may reach although the guard blocks their address (a receiver on this machine: 127.0.0.1:9000)")
				signingKey   = f.String("webhook-signing-key", "", "key the webhook secrets are derived from, base64 (default: made on the first start and kept in <data>/"+keyFile+")")
				workers      = f.Int("dispatch-workers", 8, "deliveries tried at once by this replica")
				interval     = f.Duration("dispatch-interval", 500*time.Millisecond, "how often the dispatcher looks for due deliveries while it finds some; with none it backs off to every 5s (it also looks when an event is handled and when a retry falls due)")
				maxAge       = f.Duration("max-event-age", 24*time.Hour, "events older than this are not notified (0: any age), so a new deployment does not mail the streams' history")
			)
			return func(ctx context.Context, rt *service.Runtime) error {
				var errs []string
				smtpCfg, err := parseSMTPURL(*smtpURL)
				if err != nil {
					errs = append(errs, err.Error())
				}
				allowed, err := ParseAllow(*allowHooks)
				if err != nil {
					errs = append(errs, "--webhook-allow "+err.Error())
				}
				from, err := mail.ParseAddress(*mailFrom)
				if err != nil {
					errs = append(errs, fmt.Sprintf("--mail-from %q is not an email address", *mailFrom))
				}
				if a, err := mail.ParseAddress(*adminAlert); err != nil || a.Address != *adminAlert {
					errs = append(errs, fmt.Sprintf("--admin-alert-email %q must be a bare email address", *adminAlert))
				}
				if *maxTries < 1 {
					errs = append(errs, "--max-tries must be 1 or more")
				}
				if *retryBase <= 0 || *retryMax < *retryBase {
					errs = append(errs, "--retry-base must be positive and --retry-max at least as long")
				}
				if *hookTimeout <= 0 || *smtpTimeout <= 0 {
					errs = append(errs, "--webhook-timeout and --smtp-timeout must be positive")
				}
				if *workers < 1 || *interval <= 0 || *maxAge < 0 {
					errs = append(errs, "--dispatch-workers must be 1 or more, --dispatch-interval positive and --max-event-age not negative")
				}
				if len(errs) > 0 {
					return errors.New(strings.Join(errs, "; "))
				}
				key, err := loadSigningKey(*signingKey, rt.DataDir)
				if err != nil {
					return err
				}
				// rt.ClientOptions carries the service's mutual TLS identity:
				// without it the calls to users fail their handshake.
				contacts := usersapi.NewInternal(client.New("users", rt.URL("users"), rt.Credentials,
					rt.ClientOptions(), rt.ClientMetrics))
				rt.Go("users replica probes", contacts.Run)
				s, err := New(ctx, Config{From: *from, AdminEmail: *adminAlert, MaxTries: *maxTries,
					RetryBase: *retryBase, RetryMax: *retryMax, MaxEventAge: *maxAge, AllowPrivate: *allowPrivate, AllowReceivers: allowed},
					Deps{DB: rt.DB, Log: rt.Log, SigningKey: key, Contacts: contacts})
				if err != nil {
					return err
				}
				smtpCfg.Timeout = *smtpTimeout
				helo, _ := os.Hostname()
				if helo == "" || strings.ContainsAny(helo, " \r\n") {
					helo = "localhost"
				}
				// A claim holds a delivery for longer than any try can last,
				// so no other replica takes it while it is underway.
				lease := 2*max(*smtpTimeout, *hookTimeout) + 10*time.Second
				d := newDispatcher(s, &mailer{cfg: smtpCfg, from: *from, helo: helo, keep: *workers},
					newWebhooks(s.guard, key, *hookTimeout), *workers, *interval, lease, rt.Registry)
				Routes(rt.Server.Router, s, rt.OpenAPI, rt.Verifier, rt.Log)
				for _, c := range s.Consumers() {
					rt.Go("consumer "+c.Name, rt.Consumer(c).Run)
				}
				rt.Go("dispatcher", d.Run)
				rt.Log.Info("notifications ready", "smtp", redactSMTP(*smtpURL), "from", from.String(),
					"admin_alert_email", *adminAlert, "webhook_allow_private", *allowPrivate)
				return nil
			}
		},
	}
}
