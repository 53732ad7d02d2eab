#!/usr/bin/env bash
# Password authentication through the proxy, against a server that itself demands passwords:
# - scram-sha-256 with a plaintext users-file entry,
# - md5 with an md5 hash entry,
# - scram-sha-256 with only the SCRAM verifier copied from pg_authid (the proxy cannot know the
#   password, so it must log in to the server with what the client proved).
# The right password logs in (pgwire.py and psql); a wrong one, or an unknown user, is refused
# with SQLSTATE 28P01.
#
# usage: auth_test.sh BINARY   (or the stand-ins `pgbouncer`; `direct` makes no sense here)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/pgcluster.sh"
binary=${1:?usage: auth_test.sh BINARY}
users_flag=--users  # switchyard's flag for the PgBouncer-style users file

pgc_init
port=$(free_port)
dir=$PGC_ROOT/primary
pg_create_primary "$dir" "$port"
pg_start "$dir"
psql_at "$port" <<'EOF'
create role alice login password 'alice-secret';
set password_encryption = 'md5';
create role bob login password 'bob-secret';
EOF
pg_require_password "$dir" alice scram-sha-256
pg_require_password "$dir" bob md5
verifier=$(sql_value "$port" "select rolpassword from pg_authid where rolname = 'alice'")
md5_hash=$(sql_value "$port" "select rolpassword from pg_authid where rolname = 'bob'")
[[ $verifier == SCRAM-SHA-256\$* && $md5_hash == md5* ]] ||
  pgc_die "unexpected pg_authid secrets: '$verifier' '$md5_hash'"

failures=0
check() {
  python3 "$here/pgcheck.py" "$@" || failures=$((failures + 1))
}
check_psql() {  # check_psql PORT USER PASSWORD: psql (libpq) logs in and sees itself
  local got
  got=$(PGPASSWORD=$3 "$PG_BINDIR/psql" -X -w -h 127.0.0.1 -p "$1" -U "$2" -d postgres \
    -Atc 'select current_user' 2>&1) || true
  if [[ $got == "$2" ]]; then
    echo "ok: psql as $2 on port $1"
  else
    echo "FAIL: psql as $2 on port $1: $got"
    failures=$((failures + 1))
  fi
}

# The server itself refuses wrong passwords, so a proxy that skipped server auth would show.
check --port "$port" --user alice --password wrong --expect-sqlstate 28P01
check --port "$port" --user bob --password wrong --expect-sqlstate 28P01

# run_case NAME AUTH_TYPE USER RIGHT_PASSWORD USERS_FILE_LINE
run_case() {
  local name=$1 auth_type=$2 user=$3 password=$4 line=$5
  echo "--- $name"
  printf '%s\n' "$line" >"$PGC_ROOT/users-$name.txt"
  chmod 600 "$PGC_ROOT/users-$name.txt"
  proxy_start "$binary" "$port" "$PGC_ROOT/proxy-$name.log" --auth-type "$auth_type" \
    "$users_flag" "$PGC_ROOT/users-$name.txt" --workers 2
  check --port "$PROXY_PORT" --user "$user" --password "$password" \
    --query 'select current_user' --expect-ok --expect-value "$user"
  check_psql "$PROXY_PORT" "$user" "$password"
  check --port "$PROXY_PORT" --user "$user" --password "not-$password" --expect-sqlstate 28P01
  check --port "$PROXY_PORT" --user mallory --password "$password" --expect-sqlstate 28P01
  # After the refusals the right password still works (nothing got stuck or poisoned).
  check --port "$PROXY_PORT" --user "$user" --password "$password" --query 'select 1' \
    --expect-ok --expect-value 1
  proxy_alive || { echo "FAIL: the proxy died (log: $(tail -n 5 "$PROXY_LOG"))"; failures=$((failures + 1)); }
  proxy_stop
}

run_case scram-plain scram-sha-256 alice alice-secret '"alice" "alice-secret"'
run_case md5-hash md5 bob bob-secret "\"bob\" \"$md5_hash\""
run_case scram-verifier scram-sha-256 alice alice-secret "\"alice\" \"$verifier\""

if ((failures)); then
  echo "auth: $failures check(s) failed"
  exit 1
fi
echo "auth: all checks passed"
