#!/bin/sh
# gen-keys.sh makes the secrets a microshop deployment needs, with openssl
# only (1.1.1 or later, for Ed25519), and prints them on stdout:
#
#   - one service identity key per service: an Ed25519 seed, base64, that the
#     service gets as MICROSHOP_SERVICE_KEY (its own seed, and no other), and
#     MICROSHOP_SERVICE_KEYS, the list "name=<base64 public key>,..." that every
#     service gets to check the callers of its /internal/ routes;
#   - for Kubernetes, one NATS user per service that uses the broker: an NKey
#     whose seed (SU...) the service gets as MICROSHOP_NATS_SEED, and whose
#     public key (U...) the NATS servers get from the Secret
#     microshop-nats-users, in the NATS release's namespace;
#   - MICROSHOP_WEBHOOK_SIGNING_KEY for notifications (32 random bytes), so
#     every replica signs webhooks with the same key;
#   - MICROSHOP_PROXY_SECRET (32 random bytes, hex) for the gateway and users,
#     and no other service: the gateway sends it with every request, and users
#     believes the X-Forwarded-For of a request that carries it;
#   - the admin account users makes at start (MICROSHOP_ADMIN_EMAIL, from the
#     environment or admin@example.com, and a random MICROSHOP_ADMIN_PASSWORD);
#   - for docker compose only: the Postgres superuser's password and one
#     password per service database (on Kubernetes, CloudNativePG makes those);
#   - for Kubernetes, the certificates of mutual TLS between the services: a
#     CA (ECDSA P-256, 365 days) in the Secret microshop-ca (type
#     kubernetes.io/tls, for a cert-manager CA Issuer that renews the
#     certificates; no Deployment reads it), and for each service a
#     certificate (30 days) naming it as spiffe://microshop/<service> and
#     DNS <service>, in the Secret microshop-<service>-tls (tls.crt, tls.key,
#     ca.crt), which the service mounts for --tls-cert, --tls-key and
#     --tls-ca. See docs/security.md for how they are used and renewed.
#
# Usage:
#   deploy/gen-keys.sh > deploy/.env            # for docker compose (read from deploy/.env)
#   deploy/gen-keys.sh --k8s | kubectl apply -f -   # Kubernetes Secrets
#   MICROSHOP_CA_CERT=ca.pem MICROSHOP_CA_KEY=ca-key.pem \
#     deploy/gen-keys.sh --k8s-certs | kubectl apply -f -
#
# --k8s-certs renews the services' certificates only, without cert-manager:
# new 30-day certificates in the Secrets microshop-<service>-tls, issued by
# the existing CA (its certificate and key in the PEM files that
# MICROSHOP_CA_CERT and MICROSHOP_CA_KEY name, e.g. the tls.crt and tls.key
# of the Secret microshop-ca), and nothing else. The services read a renewed
# certificate without a restart. Remove the CA key's file afterwards.
#
# The Kubernetes Secrets name their namespace: MICROSHOP_NAMESPACE (default
# microshop) for the services', NATS_NAMESPACE (default nats) for the NATS
# users'.
#
# Every run makes new keys. Keys are used together: after a new run, restart
# every service (compose up -d, or kubectl rollout restart deployment). A new
# webhook signing key changes the secrets webhook receivers were given. On
# Kubernetes, new NATS keys need the NATS servers restarted (or reloaded)
# before the services.
set -eu

SERVICES="users inventory orders payments notifications reports gateway"
# The services that publish or consume events, each a NATS user.
BROKER_SERVICES="users inventory orders payments notifications reports"
DATABASES="users inventory orders payments notifications reports"

usage() {
	sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//'
}

mode="env"
case "${1:-}" in
"" | --env) mode="env" ;;
--k8s) mode="k8s" ;;
--k8s-certs) mode="k8s-certs" ;;
-h | --help)
	usage
	exit 0
	;;
*)
	echo "gen-keys.sh: unknown argument ${1}; use --env (the default), --k8s or --k8s-certs" >&2
	exit 2
	;;
esac

if ! command -v openssl >/dev/null 2>&1; then
	echo "gen-keys.sh: needs openssl (1.1.1 or later, for Ed25519)" >&2
	exit 1
fi

admin_email=${MICROSHOP_ADMIN_EMAIL:-admin@example.com}
# The address goes into YAML and .env lines as it is: allow plain ones only.
case "$admin_email" in
*[!A-Za-z0-9.@_+-]* | *@*@* | @* | *@ | "")
	echo "gen-keys.sh: MICROSHOP_ADMIN_EMAIL=$admin_email is not a plain email address" >&2
	exit 2
	;;
*@*) ;;
*)
	echo "gen-keys.sh: MICROSHOP_ADMIN_EMAIL=$admin_email is not a plain email address" >&2
	exit 2
	;;
esac

umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

b64() { openssl base64 -A; }
upper() { printf '%s' "$1" | tr '[:lower:]' '[:upper:]'; }
size() { wc -c <"$1" | tr -d ' '; }
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# new_ca makes the CA of mutual TLS between the services: ECDSA P-256,
# 365 days, as `microshop run` does (internal/platform/mtls).
new_ca() {
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$tmp/ca-key.pem" -out "$tmp/ca.pem" -days 365 \
		-subj "/O=microshop/CN=microshop services CA" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# issue makes a certificate (30 days) per service from the CA in
# $tmp/ca.pem and $tmp/ca-key.pem: a P-256 key, the service's name as URI
# SAN spiffe://microshop/<name> and DNS SAN <name>, good for both ends of
# a connection.
issue() {
	for s in $SERVICES; do
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$tmp/$s-key.pem" -out "$tmp/$s.csr" -subj "/O=microshop/CN=$s" 2>/dev/null
		printf 'subjectAltName=URI:spiffe://microshop/%s,DNS:%s\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n' "$s" "$s" >"$tmp/$s.ext"
		openssl x509 -req -in "$tmp/$s.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" \
			-set_serial "0x$(openssl rand -hex 16)" -days 30 -extfile "$tmp/$s.ext" -out "$tmp/$s.pem" 2>/dev/null
	done
}

# block KEY FILE prints a stringData entry holding FILE as a YAML block.
block() {
	printf '  %s: |\n' "$1"
	sed 's/^/    /' "$2"
}

# secret NAME NAMESPACE [APP [TYPE]]
secret() {
	printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n' "$1" "$2"
	printf '  labels:\n    app.kubernetes.io/part-of: microshop\n'
	if [ -n "${3:-}" ]; then
		printf '    app.kubernetes.io/name: %s\n' "$3"
	fi
	printf 'type: %s\nstringData:\n' "${4:-Opaque}"
}

# tls_secrets prints each service's Secret microshop-<service>-tls.
tls_secrets() {
	for s in $SERVICES; do
		secret "microshop-$s-tls" "$namespace" "$s" kubernetes.io/tls
		block tls.crt "$tmp/$s.pem"
		block tls.key "$tmp/$s-key.pem"
		block ca.crt "$tmp/ca.pem"
	done
}

# The Kubernetes Secrets' namespaces.
namespace=${MICROSHOP_NAMESPACE:-microshop}
nats_namespace=${NATS_NAMESPACE:-nats}
if [ "$mode" != env ]; then
	for ns in "$namespace" "$nats_namespace"; do
		case "$ns" in
		*[!a-z0-9-]* | -* | *- | "")
			echo "gen-keys.sh: $ns is not a Kubernetes namespace name" >&2
			exit 2
			;;
		esac
	done
fi

if [ "$mode" = k8s-certs ]; then
	if [ -z "${MICROSHOP_CA_CERT:-}" ] || [ -z "${MICROSHOP_CA_KEY:-}" ]; then
		echo "gen-keys.sh: --k8s-certs issues from the existing CA: set MICROSHOP_CA_CERT and MICROSHOP_CA_KEY to its certificate and key (PEM; the tls.crt and tls.key of the Secret microshop-ca)" >&2
		exit 2
	fi
	if ! openssl x509 -in "$MICROSHOP_CA_CERT" -out "$tmp/ca.pem" 2>/dev/null ||
		! openssl pkey -in "$MICROSHOP_CA_KEY" -out "$tmp/ca-key.pem" 2>/dev/null; then
		echo "gen-keys.sh: $MICROSHOP_CA_CERT and $MICROSHOP_CA_KEY must be a PEM certificate and its PEM key" >&2
		exit 2
	fi
	if [ "$(openssl x509 -in "$tmp/ca.pem" -noout -pubkey)" != "$(openssl pkey -in "$tmp/ca-key.pem" -pubout)" ]; then
		echo "gen-keys.sh: $MICROSHOP_CA_KEY is not the key of $MICROSHOP_CA_CERT" >&2
		exit 2
	fi
	# A certificate must not outlive its CA: renew the CA (--k8s) instead.
	if ! openssl x509 -in "$tmp/ca.pem" -noout -checkend 2592000 >/dev/null; then
		echo "gen-keys.sh: the CA in $MICROSHOP_CA_CERT ends within 30 days; make a new one with --k8s (docs/security.md, \"On Kubernetes\")" >&2
		exit 1
	fi
	issue
	echo "# microshop service certificates, made by deploy/gen-keys.sh --k8s-certs on $now,"
	echo "# from the CA in $MICROSHOP_CA_CERT. Apply them, never commit them."
	tls_secrets
	exit 0
fi

publics=""
for s in $SERVICES; do
	openssl genpkey -algorithm ed25519 -outform DER -out "$tmp/$s.der"
	# A PKCS#8 Ed25519 private key is 48 bytes: a fixed 16-byte header, then
	# the 32-byte seed. The public key's SubjectPublicKeyInfo is 44 bytes: a
	# 12-byte header, then the 32-byte key.
	openssl pkey -inform DER -in "$tmp/$s.der" -pubout -outform DER -out "$tmp/$s.pub.der"
	if [ "$(size "$tmp/$s.der")" != 48 ] || [ "$(size "$tmp/$s.pub.der")" != 44 ]; then
		echo "gen-keys.sh: openssl made an Ed25519 key of an unexpected size" >&2
		exit 1
	fi
	tail -c 32 "$tmp/$s.der" | b64 >"$tmp/$s.seed"
	tail -c 32 "$tmp/$s.pub.der" | b64 >"$tmp/$s.pub"
	publics="${publics:+$publics,}$s=$(cat "$tmp/$s.pub")"
done

# nkey encodes the bytes on stdin (decimal, as od prints them) as NATS
# does: a CRC-16/XMODEM of them appended little-endian, then base32
# without padding. POSIX awk has no XOR, so bxor() does it bit by bit.
nkey() {
	awk '
	function bxor(a, b,   r, bit) {
		r = 0; bit = 1
		while (a > 0 || b > 0) {
			if (a % 2 != b % 2) r += bit
			a = int(a / 2); b = int(b / 2); bit *= 2
		}
		return r
	}
	{ for (i = 1; i <= NF; i++) bytes[n++] = $i }
	END {
		crc = 0
		for (i = 0; i < n; i++) {
			crc = bxor(crc, bytes[i] * 256)
			for (j = 0; j < 8; j++) {
				if (crc >= 32768) crc = bxor((crc * 2) % 65536, 4129)
				else crc = (crc * 2) % 65536
			}
		}
		bytes[n++] = crc % 256; bytes[n++] = int(crc / 256)
		A = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"; out = ""; buf = 0; bits = 0
		for (i = 0; i < n; i++) {
			buf = buf * 256 + bytes[i]; bits += 8
			while (bits >= 5) {
				bits -= 5; p = 2 ^ bits
				out = out substr(A, int(buf / p) + 1, 1); buf = buf % p
			}
		}
		if (bits > 0) out = out substr(A, buf * 2 ^ (5 - bits) + 1, 1)
		print out
	}'
}

# A NATS user: its seed is the prefix bytes of a user seed (149 0), then
# the 32-byte Ed25519 seed; its public key, the user prefix (160), then the
# 32-byte public key.
for s in $BROKER_SERVICES; do
	openssl genpkey -algorithm ed25519 -outform DER -out "$tmp/$s.nats.der"
	openssl pkey -inform DER -in "$tmp/$s.nats.der" -pubout -outform DER -out "$tmp/$s.nats.pub.der"
	{
		echo 149 0
		tail -c 32 "$tmp/$s.nats.der" | od -An -v -tu1
	} | nkey >"$tmp/$s.nats.seed"
	{
		echo 160
		tail -c 32 "$tmp/$s.nats.pub.der" | od -An -v -tu1
	} | nkey >"$tmp/$s.nats.pub"
done

webhook_key=$(openssl rand 32 | b64)
# Hex: it travels in an HTTP header.
proxy_secret=$(openssl rand -hex 32)
admin_password=$(openssl rand -hex 16)

if [ "$mode" = env ]; then
	echo "# microshop secrets, made by deploy/gen-keys.sh on $now."
	echo "# Keep this file secret. docker compose reads it as deploy/.env and gives"
	echo "# each container only what its compose.yaml entry names."
	echo "MICROSHOP_SERVICE_KEYS=$publics"
	for s in $SERVICES; do
		echo "MICROSHOP_SERVICE_KEY_$(upper "$s")=$(cat "$tmp/$s.seed")"
	done
	echo "MICROSHOP_WEBHOOK_SIGNING_KEY=$webhook_key"
	echo "MICROSHOP_PROXY_SECRET=$proxy_secret"
	echo "MICROSHOP_ADMIN_EMAIL=$admin_email"
	echo "MICROSHOP_ADMIN_PASSWORD=$admin_password"
	echo "POSTGRES_PASSWORD=$(openssl rand -hex 24)"
	for d in $DATABASES; do
		echo "MICROSHOP_DB_PASSWORD_$(upper "$d")=$(openssl rand -hex 24)"
	done
	exit 0
fi

# --k8s: the Secrets that deploy/k8s/base's Deployments read (see
# deploy/k8s/base/secrets.example.yaml for their shape).
echo "# microshop secrets, made by deploy/gen-keys.sh --k8s on $now."
echo "# Apply them, never commit them: deploy/gen-keys.sh --k8s | kubectl apply -f -"
secret microshop-service-keys "$namespace"
printf '  MICROSHOP_SERVICE_KEYS: "%s"\n' "$publics"
# Read by the gateway and users only (their Deployments name it).
secret microshop-proxy-secret "$namespace"
printf '  MICROSHOP_PROXY_SECRET: "%s"\n' "$proxy_secret"
# The public NKeys of the services' NATS users, for the NATS servers
# (deploy/k8s/nats-values.yaml).
secret microshop-nats-users "$nats_namespace"
for s in $BROKER_SERVICES; do
	printf '  NKEY_%s: "%s"\n' "$(upper "$s")" "$(cat "$tmp/$s.nats.pub")"
done
for s in $SERVICES; do
	secret "microshop-$s" "$namespace" "$s"
	printf '  MICROSHOP_SERVICE_KEY: "%s"\n' "$(cat "$tmp/$s.seed")"
	if [ -f "$tmp/$s.nats.seed" ]; then
		printf '  MICROSHOP_NATS_SEED: "%s"\n' "$(cat "$tmp/$s.nats.seed")"
	fi
	case "$s" in
	users)
		printf '  MICROSHOP_ADMIN_EMAIL: "%s"\n' "$admin_email"
		printf '  MICROSHOP_ADMIN_PASSWORD: "%s"\n' "$admin_password"
		;;
	notifications)
		printf '  MICROSHOP_WEBHOOK_SIGNING_KEY: "%s"\n' "$webhook_key"
		;;
	esac
done
# Mutual TLS: the CA, for an issuer that renews the certificates (no
# Deployment reads it), and each service's own certificate.
new_ca
issue
secret microshop-ca "$namespace" "" kubernetes.io/tls
block tls.crt "$tmp/ca.pem"
block tls.key "$tmp/ca-key.pem"
tls_secrets
