#!/bin/sh
# Runs once, when the postgres container of deploy/compose.yaml initialises an
# empty data directory (the official image runs /docker-entrypoint-initdb.d/*).
#
# One database per service, each owned by a role of the same name that can
# reach no other: a service never reads another's data. Every password comes
# from the environment (MICROSHOP_DB_PASSWORD_<SERVICE>, made by
# deploy/gen-keys.sh). The service applies its own migrations at start.
set -eu

for db in users inventory orders payments notifications reports; do
	var="MICROSHOP_DB_PASSWORD_$(printf '%s' "$db" | tr '[:lower:]' '[:upper:]')"
	eval "password=\${$var:-}"
	if [ -z "$password" ]; then
		echo "10-microshop-databases.sh: $var is not set; run deploy/gen-keys.sh > deploy/.env" >&2
		exit 1
	fi
	# psql substitutes :"name" (an identifier) and :'password' (a literal)
	# itself, quoting them, in a script read from stdin.
	psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
		--set=name="$db" --set=password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
	echo "10-microshop-databases.sh: database $db, owned by role $db"
done
