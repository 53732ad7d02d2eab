# shellcheck shell=bash
# Throwaway PostgreSQL clusters and proxies for scripts and integration tests. Source it:
#
#   source "$(dirname "$0")/pgcluster.sh"     (or the path relative to the caller)
#   pgc_init                                  # temp root + cleanup trap
#   port=$(free_port); pg_create_primary "$PGC_ROOT/a" "$port"; pg_start "$PGC_ROOT/a"
#   proxy_start "$binary" "$port" "$PGC_ROOT/proxy.log" --auth-type trust --workers 2
#   psql_at "$PROXY_PORT" -c 'select 1'
#
# Everything started through these functions is stopped, and every temp dir removed, when the
# sourcing shell exits by any path (set KEEP_TEMP=1 to keep the files for a post-mortem).
#
# The server refuses to run as root, so clusters live in dirs owned by `postgres` and every
# server-side command runs as that user. Ports are random free ports on 127.0.0.1, reserved
# with lock files so parallel tests (ctest -j) never pick the same one.
#
# A "proxy" is the switchyard binary, or one of two stand-ins used to validate the scripts
# before the proxy exists: `direct` (no proxy: clients talk to the server) and `pgbouncer`
# (Debian's PgBouncer in session mode, configured from the same flags).

PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PGC_USER=${PGC_USER:-postgres}
PGC_PORT_MIN=${PGC_PORT_MIN:-20000}
PGC_PORT_MAX=${PGC_PORT_MAX:-32000}  # below Linux's ephemeral range (32768+)
PGC_LOCK_DIR=${PGC_LOCK_DIR:-${TMPDIR:-/tmp}/switchyard-port-locks}
PGC_ROOT=""
PGC_STARTED_CLUSTERS=()
PGC_STARTED_PIDS=()
PGC_EXIT_HOOKS=()
PROXY_PORT=""
PROXY_PID=""
PROXY_LOG=""

pgc_die() {
  echo "error: $*" >&2
  exit 1
}

pgc_log() {
  echo "[$(date +%H:%M:%S)] $*" >&2
}

# Runs a command as the cluster owner (the server and pg_ctl refuse root).
as_pg() {
  runuser -u "$PGC_USER" -- "$@"
}

# Creates the temp root (owned by postgres, readable by all) and installs the cleanup trap.
# Callers that need their own cleanup register it with pgc_on_exit.
pgc_init() {
  [[ $(id -u) == 0 ]] || pgc_die "run as root (clusters are created for the postgres user)"
  id "$PGC_USER" >/dev/null 2>&1 || pgc_die "no '$PGC_USER' user: run scripts/install-deps.sh"
  [[ -x $PG_BINDIR/initdb ]] || pgc_die "no PostgreSQL 15 in $PG_BINDIR: run scripts/install-deps.sh"
  pgc_reap_orphans
  PGC_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/switchyard.XXXXXX")
  chmod 755 "$PGC_ROOT"
  echo "$$" >"$PGC_ROOT/owner.pid"
  chown "$PGC_USER:" "$PGC_ROOT"
  trap pgc_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # Clients must never wait forever on a broken proxy, nor pick up settings from the caller.
  export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}
  unset PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD PGSERVICE PGOPTIONS PGAPPNAME
}

# A script killed with SIGKILL (ctest's timeout does that) cannot clean up, and pg_ctl's servers
# outlive it. The next script to start stops them: any temp root whose owner is gone.
pgc_reap_orphans() {
  local root owner data pid exe lock
  for lock in "$PGC_LOCK_DIR"/*; do
    # Another script may remove the file meanwhile: every read here may fail.
    owner=$(cat "$lock" 2>/dev/null) || continue
    [[ -n $owner ]] && ! kill -0 "$owner" 2>/dev/null && rm -f "$lock"
  done
  for root in "${TMPDIR:-/tmp}"/switchyard.*; do
    owner=$(cat "$root/owner.pid" 2>/dev/null) || continue
    kill -0 "$owner" 2>/dev/null && continue
    while read -r pid exe; do
      [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$exe" ]] && kill -KILL "$pid" 2>/dev/null || true
    done < <(cat "$root/pids" 2>/dev/null)
    # A server that died with its owner leaves a stale postmaster.pid, and pg_ctl stop then
    # fails: that is fine, the directory goes anyway (the reaper must never fail its caller).
    for data in "$root"/*/data; do
      if [[ -f $data/postmaster.pid ]]; then
        as_pg "$PG_BINDIR/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
      fi
    done
    # Whatever else still works in there (an initdb, a pg_basebackup, a client) is orphaned.
    # (The pattern comes from a file so that grep's own command line does not match.)
    for pid in $(grep -lsaF -f <(echo "$root/") /proc/[0-9]*/cmdline | cut -d/ -f3); do
      pgc_kill_tree "$pid"
    done
    sleep 0.2
    rm -rf "$root"
  done
  return 0
}

# Stops a process and its descendants at once (an initdb's single-user postgres, say).
pgc_kill_tree() {
  local child
  kill -STOP "$1" 2>/dev/null || return 0
  for child in $(pgrep -P "$1"); do
    pgc_kill_tree "$child"
  done
  kill -KILL "$1" 2>/dev/null
  return 0
}

# Remembers a started process for the cleanup, and for the reaper should this shell be killed.
# pgc_track_pid PID EXECUTABLE (what the process runs once it has exec'd).
pgc_track_pid() {
  PGC_STARTED_PIDS+=("$1")
  echo "$1 $(readlink -f "$2")" >>"$PGC_ROOT/pids"
}

pgc_on_exit() {
  PGC_EXIT_HOOKS+=("$1")
}

pgc_cleanup() {
  local status=$?
  set +e
  local i
  for ((i = ${#PGC_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do
    eval "${PGC_EXIT_HOOKS[i]}"
  done
  for pid in "${PGC_STARTED_PIDS[@]}"; do
    pgc_kill_pid "$pid"
  done
  for dir in "${PGC_STARTED_CLUSTERS[@]}"; do
    pg_stop "$dir" immediate >/dev/null 2>&1
  done
  pgc_release_ports
  if [[ -n $PGC_ROOT && -d $PGC_ROOT ]]; then
    if [[ ${KEEP_TEMP:-0} == 1 ]]; then
      rm -f "$PGC_ROOT/owner.pid"  # so that the reaper leaves it alone
      echo "kept temp files in $PGC_ROOT" >&2
    else
      rm -rf "$PGC_ROOT"
    fi
  fi
  return "$status"
}

# Sends TERM, waits up to 5 s, then KILL. Only for processes this library started.
pgc_kill_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Prints a free TCP port on 127.0.0.1 and reserves it until this shell exits. The lock file
# holds the owner's pid ($$ is the top shell even inside $(...)), so stale locks are reclaimed.
free_port() {
  mkdir -p "$PGC_LOCK_DIR"
  local tries port lock owner
  for ((tries = 0; tries < 200; tries++)); do
    port=$((PGC_PORT_MIN + RANDOM % (PGC_PORT_MAX - PGC_PORT_MIN)))
    lock=$PGC_LOCK_DIR/$port
    if ! (set -o noclobber; echo "$$" >"$lock") 2>/dev/null; then
      owner=$(cat "$lock" 2>/dev/null)
      if [[ -n $owner ]] && ! kill -0 "$owner" 2>/dev/null; then
        rm -f "$lock"  # its owner died without cleaning up; retry later
      fi
      continue
    fi
    if python3 - "$port" <<'EOF' 2>/dev/null; then
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
EOF
      echo "$port"
      return 0
    fi
    rm -f "$lock"
  done
  pgc_die "no free port found in $PGC_PORT_MIN..$PGC_PORT_MAX"
}

pgc_release_ports() {
  local lock
  for lock in "$PGC_LOCK_DIR"/*; do
    [[ -f $lock && $(cat "$lock" 2>/dev/null) == "$$" ]] && rm -f "$lock"
  done
  return 0
}

# pg_create_primary DIR PORT: a new cluster in DIR/data, trust auth for all local TCP users,
# listening on 127.0.0.1:PORT only, unix socket inside DIR. Set up for replication too.
pg_create_primary() {
  local dir=$1 port=$2
  [[ -n $dir && -n $port ]] || pgc_die "usage: pg_create_primary DIR PORT"
  mkdir -p "$dir"
  chown "$PGC_USER:" "$dir"
  as_pg "$PG_BINDIR/initdb" -D "$dir/data" -A trust --username=postgres --no-locale \
    --encoding=UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; pgc_die "initdb failed in $dir"; }
  pgc_write_settings "$dir" "$port"
}

# Settings for a throwaway test server. Appended last, so they win over earlier lines (a
# replica inherits its primary's postgresql.conf and overrides it the same way).
pgc_write_settings() {
  local dir=$1 port=$2
  as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF

# --- switchyard test settings ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = ${PGC_MAX_CONNECTIONS:-200}
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
checkpoint_timeout = 30min
max_wal_size = 1GB
log_line_prefix = '%m [%p] %q%u@%d '
log_connections = off
lc_messages = 'C'
EOF
}

# pg_set DIR 'name = value' ...: more settings (take effect at the next start, or pg_reload).
pg_set() {
  local dir=$1
  shift
  printf '%s\n' "$@" | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
}

# pg_require_password DIR ROLE METHOD: TCP logins of ROLE must authenticate with METHOD
# (scram-sha-256 or md5). Other roles keep trust. Reloads a running server.
pg_require_password() {
  local dir=$1 role=$2 method=$3 hba=$1/data/pg_hba.conf
  { echo "host all $role 127.0.0.1/32 $method"; cat "$hba"; } >"$hba.new"
  chown "$PGC_USER:" "$hba.new"
  mv "$hba.new" "$hba"
  pg_is_running "$dir" && pg_reload "$dir"
  return 0
}

pg_is_running() {
  as_pg "$PG_BINDIR/pg_ctl" -D "$1/data" status >/dev/null 2>&1
}

pg_reload() {
  as_pg "$PG_BINDIR/pg_ctl" -D "$1/data" reload >/dev/null
}

# pg_start DIR: starts the server and waits until it accepts connections.
pg_start() {
  local dir=$1
  PGC_STARTED_CLUSTERS+=("$dir")
  if ! as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    >/dev/null; then
    tail -n 30 "$dir/server.log" >&2
    pgc_die "server in $dir did not start"
  fi
}

# pg_stop DIR [MODE]: fast by default; `immediate` for cleanup.
pg_stop() {
  local dir=$1 mode=${2:-fast}
  [[ -f $dir/data/postmaster.pid ]] || return 0
  as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null
}

# pg_create_replica PRIMARY_PORT DIR PORT: a streaming replica of the primary (pg_basebackup -R),
# created but not started.
pg_create_replica() {
  local primary_port=$1 dir=$2 port=$3
  [[ -n $primary_port && -n $dir && -n $port ]] ||
    pgc_die "usage: pg_create_replica PRIMARY_PORT DIR PORT"
  mkdir -p "$dir"
  chown "$PGC_USER:" "$dir"
  as_pg "$PG_BINDIR/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres \
    -D "$dir/data" -R -X stream -c fast --no-sync >"$dir/basebackup.log" 2>&1 ||
    { cat "$dir/basebackup.log" >&2; pgc_die "pg_basebackup from port $primary_port failed"; }
  pgc_write_settings "$dir" "$port"
}

# pg_start_replicated PRIMARY_DIR REPLICA_PREFIX COUNT: a started primary in PRIMARY_DIR and COUNT
# started streaming replicas of it in REPLICA_PREFIX1, REPLICA_PREFIX2, ... Sets PGC_PRIMARY_PORT
# and the array PGC_REPLICA_PORTS.
pg_start_replicated() {
  local primary_dir=$1 prefix=$2 count=$3 i
  PGC_PRIMARY_PORT=$(free_port)
  PGC_REPLICA_PORTS=()
  pg_create_primary "$primary_dir" "$PGC_PRIMARY_PORT"
  pg_start "$primary_dir"
  for ((i = 1; i <= count; i++)); do
    PGC_REPLICA_PORTS+=("$(free_port)")
    pg_create_replica "$PGC_PRIMARY_PORT" "$prefix$i" "${PGC_REPLICA_PORTS[i - 1]}"
  done
  for ((i = 1; i <= count; i++)); do
    pg_start "$prefix$i"
  done
}

# pg_wait_replayed PRIMARY_PORT REPLICA_PORT...: waits (up to 10 s each) until every replica has
# replayed the primary's WAL as far as it goes now.
pg_wait_replayed() {
  local primary=$1 target port i
  shift
  target=$(sql_value "$primary" "SELECT pg_current_wal_insert_lsn()")
  for port in "$@"; do
    for ((i = 0; i < 100; i++)); do
      [[ $(sql_value "$port" "SELECT pg_last_wal_replay_lsn() >= '$target'") == t ]] && break
      sleep 0.1
    done
  done
}

# pgc_fail MESSAGE: a test's failure, with the end of the proxy's log for the post-mortem.
pgc_fail() {
  echo "FAIL: $*" >&2
  [[ -n $PROXY_LOG && -f $PROXY_LOG ]] && tail -n 40 "$PROXY_LOG" >&2
  exit 1
}

# pgc_check_pgbench NAME OUTPUT-FILE EXIT-STATUS: fails the test unless that pgbench run exited
# 0 with no failed transaction and no aborted client.
pgc_check_pgbench() {
  local name=$1 out=$2 status=$3
  if ((status != 0)); then
    cat "$out" >&2
    pgc_fail "pgbench ($name) exited with an error (an aborted client)"
  fi
  grep -q 'number of failed transactions: 0 ' "$out" ||
    { cat "$out" >&2; pgc_fail "pgbench ($name) reports failed transactions"; }
  if grep -q 'aborted' "$out"; then
    cat "$out" >&2
    pgc_fail "pgbench ($name) reports an aborted client"
  fi
}

# psql_at PORT [psql args...]: psql as postgres on 127.0.0.1:PORT, quiet, stop on error.
psql_at() {
  local port=$1
  shift
  "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres \
    -d "${PGC_DB:-postgres}" "$@"
}

# sql_value PORT SQL: one value, unaligned.
sql_value() {
  psql_at "$1" -Atc "$2"
}

# wait_for_log FILE PATTERN SECONDS [PID]: waits until FILE has a line matching PATTERN; fails
# early if PID dies.
wait_for_log() {
  local file=$1 pattern=$2 seconds=$3 pid=${4:-} i
  for ((i = 0; i < seconds * 10; i++)); do
    grep -q -- "$pattern" "$file" 2>/dev/null && return 0
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    sleep 0.1
  done
  return 1
}

# proxy_start BINARY PRIMARY_PORT LOG [serve flags...]: starts the proxy on a free port in
# front of 127.0.0.1:PRIMARY_PORT, waits for it to listen, and sets PROXY_PORT, PROXY_PID and
# PROXY_LOG. The flags are switchyard's (`--auth-type trust --workers 2` when none are given);
# the stand-ins translate the ones they understand.
proxy_start() {
  local binary=$1 primary_port=$2 log=$3
  shift 3
  local flags=("$@")
  ((${#flags[@]})) || flags=(--auth-type trust --workers 2)
  PROXY_LOG=$log
  case $binary in
    direct)
      PROXY_PORT=$primary_port
      PROXY_PID=""
      return 0
      ;;
    pgbouncer)
      pgbouncer_start "$primary_port" "$log" "${flags[@]}"
      return 0
      ;;
  esac
  [[ -x $binary ]] || pgc_die "proxy binary '$binary' is missing or not executable (build it first)"
  PROXY_PORT=$(free_port)
  "$binary" serve --listen "127.0.0.1:$PROXY_PORT" --primary "127.0.0.1:$primary_port" \
    "${flags[@]}" >"$log" 2>&1 &
  PROXY_PID=$!
  pgc_track_pid "$PROXY_PID" "$binary"
  if ! wait_for_log "$log" 'event=listening' 20 "$PROXY_PID"; then
    tail -n 30 "$log" >&2
    pgc_die "proxy did not log event=listening (command: $binary serve --listen 127.0.0.1:$PROXY_PORT --primary 127.0.0.1:$primary_port ${flags[*]})"
  fi
}

proxy_alive() {
  [[ -z $PROXY_PID ]] || kill -0 "$PROXY_PID" 2>/dev/null
}

# proxy_stop: stops the proxy started last.
proxy_stop() {
  if [[ -n $PROXY_PID ]]; then
    pgc_kill_pid "$PROXY_PID"
  fi
  PROXY_PID=""
}

# The PgBouncer stand-in: session pooling unless --pool-mode says otherwise, same auth
# settings, runs as postgres (it refuses root). setpriv execs in place, so $! is PgBouncer's own pid (bench.sh reads its CPU time).
pgbouncer_start() {
  local primary_port=$1 log=$2
  shift 2
  local auth_type=trust users_file="" login_timeout=60 pool_mode=session pool_size=100
  while (($#)); do
    case $1 in
      --pool-mode) pool_mode=$2; shift 2 ;;
      --pool-size) pool_size=$2; shift 2 ;;
      --auth-type) auth_type=$2; shift 2 ;;
      --users | --users-file) users_file=$2; shift 2 ;;
      --auth-timeout-ms) login_timeout=$(((($2) + 999) / 1000)); shift 2 ;;
      --workers) shift 2 ;;
      *) pgc_die "the pgbouncer stand-in does not understand flag $1" ;;
    esac
  done
  command -v pgbouncer >/dev/null || pgc_die "pgbouncer is not installed (scripts/install-deps.sh)"
  local dir
  dir=$(mktemp -d "$PGC_ROOT/pgbouncer.XXXXXX")
  chmod 755 "$dir"
  if [[ -n $users_file ]]; then
    cp "$users_file" "$dir/userlist.txt"
  else
    echo '"postgres" ""' >"$dir/userlist.txt"
  fi
  PROXY_PORT=$(free_port)
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$primary_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PROXY_PORT
unix_socket_dir =
auth_type = $auth_type
auth_file = $dir/userlist.txt
pool_mode = $pool_mode
max_client_conn = 500
default_pool_size = $pool_size
max_db_connections = 0
client_login_timeout = $login_timeout
server_reset_query = DISCARD ALL
ignore_startup_parameters = extra_float_digits,options
pidfile = $dir/pgbouncer.pid
logfile = $dir/pgbouncer.log
EOF
  chown -R "$PGC_USER:" "$dir"
  setpriv --reuid="$PGC_USER" --regid="$PGC_USER" --init-groups -- \
    pgbouncer "$dir/pgbouncer.ini" >"$log" 2>&1 &
  PROXY_PID=$!
  pgc_track_pid "$PROXY_PID" "$(command -v pgbouncer)"
  if ! wait_for_log "$log" 'listening on' 20 "$PROXY_PID"; then
    tail -n 30 "$log" >&2
    pgc_die "pgbouncer did not start"
  fi
}

# cpu_ticks PID: utime+stime of a process in clock ticks (fields 14 and 15 of /proc/PID/stat;
# the command name in field 2 may hold spaces, so count from the closing parenthesis).
cpu_ticks() {
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }
  # After "pid (comm) " the fields start at 3: utime is the 12th, stime the 13th from there.
  read -r -a fields <<<"$stat"
  echo $((fields[11] + fields[12]))
}
