#!/usr/bin/env bash
# PostgreSQL's own regression suite (parallel_schedule), run twice on two fresh clusters: once
# directly, once through the proxy. Passes iff every test that passes directly also passes
# through the proxy, except the ones docs/regress-differences.md allows (and explains).
#
# usage: run-regress.sh BINARY
#   BINARY    the switchyard binary; or `direct` (no proxy: both runs direct, which checks the
#             harness) or `pgbouncer` (PgBouncer in session mode as a stand-in proxy)
# environment:
#   REGRESS_SUITE        the suite dir (sql/, expected/, data/, parallel_schedule, regress.c);
#                        default ../shared/pg_regress beside the repo, else PostgreSQL's Debian
#                        source package fetched into a cache dir (`fetch` forces that)
#   REGRESS_DIFFERENCES  the allowed-differences page (default docs/regress-differences.md)
#   REGRESS_OUT          where results go (default a new /tmp/switchyard-regress.XXXXXX, kept;
#                        a new run removes all but the three newest of those first)
#   REGRESS_PARALLEL=1   run the direct and the proxied suite at the same time (faster, but
#                        timing-sensitive tests get flakier on a small machine)
#   REGRESS_MAX_CONNECTIONS  pg_regress --max-connections (default: unlimited)
#   REGRESS_SCHEDULE     a schedule file instead of parallel_schedule (for quick checks)
#   PROXY_FLAGS          serve flags (default: --auth-type trust --workers 2)
#   REGRESS_ROUTED=1     a third run, through a second switchyard in front of cluster C, a
#                        primary with two streaming replicas, reads routed to them and
#                        read-your-writes on; it is held to the "Differences with replicas"
#                        section of the page
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
source "$here/pgcluster.sh"

(($# == 1)) || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
binary=$1
if [[ $binary != direct && $binary != pgbouncer ]]; then
  binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
  [[ -x $binary ]] || pgc_die "no executable at $1 (build switchyard first)"
fi

pg_regress=${PG_REGRESS:-/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress}
[[ -x $pg_regress ]] || pgc_die "pg_regress not found at $pg_regress (postgresql-server-dev-15)"
differences=${REGRESS_DIFFERENCES:-$repo/docs/regress-differences.md}
[[ -f $differences ]] || pgc_die "no allowed-differences page at $differences"

# The suite: the shared copy, or the Debian source package's src/test/regress (fetched once).
fetch_suite() {
  local cache=${SWITCHYARD_CACHE_DIR:-/var/tmp/switchyard-cache}
  local found
  found=$(find "$cache" -maxdepth 5 -path '*/src/test/regress/parallel_schedule' 2>/dev/null |
    head -n 1)
  if [[ -z $found ]]; then
    pgc_log "fetching PostgreSQL 15 sources (apt-get source postgresql-15) into $cache"
    if ! command -v dpkg-source >/dev/null; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev >/dev/null
    fi
    if ! apt-get source --print-uris postgresql-15 >/dev/null 2>&1; then
      add_deb_src
      apt-get update -qq
    fi
    mkdir -p "$cache"
    # Newest version first; a mirror may no longer serve the newest one's sources.
    local version fetched=0
    for version in $(apt-cache showsrc postgresql-15 | sed -n 's/^Version: //p' | sort -rV); do
      if (cd "$cache" && apt-get source -qq "postgresql-15=$version") >"$cache/fetch.log" 2>&1; then
        fetched=1
        break
      fi
    done
    ((fetched)) || { cat "$cache/fetch.log" >&2; pgc_die "apt-get source postgresql-15 failed"; }
    rm -f "$cache"/*.tar.* "$cache"/*.dsc
    found=$(find "$cache" -maxdepth 5 -path '*/src/test/regress/parallel_schedule' | head -n 1)
    [[ -n $found ]] || pgc_die "no src/test/regress in the fetched sources under $cache"
    chmod -R a+rX "$cache"
  fi
  dirname "$found"
}

# deb-src twins of the configured deb sources (deb822 or one-line format).
add_deb_src() {
  local out=/etc/apt/sources.list.d/switchyard-deb-src
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    sed -n 's/^Types: *deb$/Types: deb-src/; p' /etc/apt/sources.list.d/*.sources >"$out.sources"
  else
    grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed 's/^deb /deb-src /' >"$out.list"
  fi
}

suite=${REGRESS_SUITE:-}
if [[ -z $suite && -f $repo/../shared/pg_regress/parallel_schedule ]]; then
  suite=$(cd "$repo/../shared/pg_regress" && pwd)
elif [[ -z $suite || $suite == fetch ]]; then
  suite=$(fetch_suite)
fi
for need in parallel_schedule regress.c sql expected data; do
  [[ -e $suite/$need ]] || pgc_die "the suite at $suite has no $need"
done
schedule=${REGRESS_SCHEDULE:-$suite/parallel_schedule}
schedule=$(cd "$(dirname "$schedule")" && pwd)/$(basename "$schedule")

pgc_init
if [[ -z ${REGRESS_OUT:-} ]]; then
  # Results are kept for reading; the oldest beyond the last few go (each is ~20 MB).
  find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'switchyard-regress.*' -type d -printf '%T@ %p\n' |
    sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -rf
fi
out=${REGRESS_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/switchyard-regress.XXXXXX")}
mkdir -p "$out"
chmod 755 "$out"

# The server reads the suite's data files (COPY FROM) as postgres: use a readable copy if the
# suite sits somewhere postgres cannot reach (a copy in the results dir, never in the repo).
if ! as_pg test -r "$suite/data/agg.data" -a -r "$schedule" -a -r "$suite/sql/boolean.sql"; then
  pgc_log "the suite is not readable by $PGC_USER; using a copy in $out/suite"
  cp -r "$suite" "$out/suite"
  [[ $schedule == "$suite"/* ]] && schedule=$out/suite/${schedule#"$suite"/}
  suite=$out/suite
  chmod -R a+rX "$suite"
fi

# regress.so (the suite's C functions) plus the two contrib modules it loads, in --dlpath.
lib=$out/lib
mkdir -p "$lib"
pg_config=$PG_BINDIR/pg_config
[[ -x $pg_config ]] || pg_config=pg_config
includedir=$("$pg_config" --includedir-server)
[[ -f $includedir/postgres.h ]] || pgc_die "no server headers in $includedir (postgresql-server-dev-15)"
cc -shared -fPIC -O2 -w -I"$includedir" -o "$lib/regress.so" "$suite/regress.c" ||
  pgc_die "building regress.so failed"
pkglibdir=$("$pg_config" --pkglibdir)
cp "$pkglibdir/autoinc.so" "$pkglibdir/refint.so" "$lib/"
chown -R "$PGC_USER:" "$out"

port_a=$(free_port)
port_b=$(free_port)
pg_create_primary "$PGC_ROOT/a" "$port_a"
pg_create_primary "$PGC_ROOT/b" "$port_b"
pg_start "$PGC_ROOT/a"
pg_start "$PGC_ROOT/b"
read -r -a proxy_flags <<<"${PROXY_FLAGS:---auth-type trust --workers 2}"
proxy_start "$binary" "$port_b" "$out/proxy.log" "${proxy_flags[@]}"
pgc_log "cluster A :$port_a (direct), cluster B :$port_b behind $(basename "$binary") :$PROXY_PORT"

# run_suite NAME PORT: pg_regress into $out/NAME; its console output in $out/NAME/output.txt.
routed=0
if [[ ${REGRESS_ROUTED:-0} == 1 && $binary != direct && $binary != pgbouncer ]]; then
  routed=1
  pg_start_replicated "$PGC_ROOT/c" "$PGC_ROOT/c" 2
  port_c=$PGC_PRIMARY_PORT
  port_c1=${PGC_REPLICA_PORTS[0]}
  port_c2=${PGC_REPLICA_PORTS[1]}
  # Without feedback from the replicas: with it, a snapshot open on a replica holds back what the
  # primary's VACUUM may mark all-visible, and the planner then picks other plans than on the
  # replica-less direct cluster (create_index's EXPLAINs). The primary's behaviour would differ,
  # not anything the proxy does; without feedback both clusters vacuum alike.
  for replica in "$PGC_ROOT/c1" "$PGC_ROOT/c2"; do
    pg_set "$replica" "hot_standby_feedback = off"
    pg_reload "$replica"
  done
  first_proxy_port=$PROXY_PORT first_proxy_pid=$PROXY_PID
  proxy_start "$binary" "$port_c" "$out/proxy-routed.log" "${proxy_flags[@]}" \
    --replica "127.0.0.1:$port_c1" --replica "127.0.0.1:$port_c2" --health-user postgres \
    --health-check-interval-ms 100
  ROUTED_PORT=$PROXY_PORT ROUTED_PID=$PROXY_PID
  PROXY_PORT=$first_proxy_port PROXY_PID=$first_proxy_pid
  pgc_log "cluster C :$port_c with replicas :$port_c1 :$port_c2 behind" \
    "$(basename "$binary") :$ROUTED_PORT (reads routed, read-your-writes)"
fi

run_suite() {
  local name=$1 port=$2 started=$SECONDS status=0
  local extra=()
  [[ -n ${REGRESS_MAX_CONNECTIONS:-} ]] && extra+=("--max-connections=$REGRESS_MAX_CONNECTIONS")
  as_pg mkdir -p "$out/$name"
  (cd "$out/$name" && as_pg "$pg_regress" --bindir="$PG_BINDIR" --host=127.0.0.1 --port="$port" \
    --user=postgres --dlpath="$lib" --inputdir="$suite" --outputdir="$out/$name" --no-locale \
    --schedule="$schedule" "${extra[@]}" >"$out/$name/output.txt" 2>&1) || status=$?
  echo "$((SECONDS - started))" >"$out/$name/seconds"
  pgc_log "$name run: pg_regress exit $status in $((SECONDS - started)) s"
}

if [[ ${REGRESS_PARALLEL:-0} == 1 ]]; then
  run_suite direct "$port_a" &
  direct_job=$!
  run_suite proxy "$PROXY_PORT"
  wait "$direct_job"
else
  run_suite direct "$port_a"
  run_suite proxy "$PROXY_PORT"
fi
proxy_alive || pgc_log "warning: the proxy (pid $PROXY_PID) exited during the run"
if ((routed)); then
  run_suite routed "$ROUTED_PORT"
  kill -0 "$ROUTED_PID" 2>/dev/null ||
    pgc_log "warning: the routing proxy (pid $ROUTED_PID) exited during the run"
  # How much the replicas served (pg_stat_database, all databases).
  for port in "$port_c" "$port_c1" "$port_c2"; do
    sql_value "$port" "select sum(xact_commit) from pg_stat_database" 2>/dev/null || echo "?"
  done >"$out/routed/commits"
fi

# Compare the sets of passing tests and print the summary; the exit status is the verdict.
python3 - "$out" "$differences" "$routed" <<'EOF'
import os, re, sys

out, differences_path, routed = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
# PG15 lines: "test foo   ... ok   12 ms", "     foo   ... FAILED   3 ms",
# "     random ... failed (ignored)", "test foo ... FAILED (test process exited with exit code 2)".
LINE = re.compile(r"^(?:test\s+)?\s*(\S+)\s+\.\.\.\s+(ok|FAILED|failed \(ignored\))")

def results(name):
    status = {}
    with open(os.path.join(out, name, "output.txt"), errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if m:
                status[m.group(1)] = {"ok": "ok", "FAILED": "failed"}.get(m.group(2), "ignored")
    return status

def allowed_differences(path, section="differences"):
    """Backquoted names of `- `name`: reason` lines in one section of the page."""
    names, in_section = {}, False
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                in_section = line.lstrip("#").strip().lower() == section
                continue
            m = re.match(r"^\s*[-*]\s+`([^`]+)`\s*:\s*(.*)$", line)
            if in_section and m:
                names[m.group(1)] = m.group(2).strip()
    return names

def diff_sections(name):
    """regression.diffs split per test (each section starts with a `diff ... expected/T.out` line)."""
    sections, current = {}, None
    path = os.path.join(out, name, "regression.diffs")
    if not os.path.exists(path):
        return sections
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"^diff .*/expected/([^/\s]+?)(?:_\d+)?\.out\s", line)
            if m:
                current = sections.setdefault(m.group(1), [])
            if current is not None:
                current.append(line.rstrip("\n"))
    return sections

direct = results("direct")
if not direct:
    sys.exit(f"error: no test results in {out}/direct/output.txt (pg_regress could not run?)")
passed_direct = {t for t, s in direct.items() if s == "ok"}
failed_direct = sorted(t for t, s in direct.items() if s == "failed")
seconds_direct = open(os.path.join(out, "direct", "seconds")).read().strip()
print()
print(f"regression suite: {len(direct)} tests, {len(passed_direct)} passed direct "
      f"({seconds_direct} s)")
if failed_direct:
    print(f"  failing even direct: {' '.join(failed_direct)}")

# A test that fails even direct (say, a psql newer than the suite's expected files) still has to
# behave the same through the proxy: its output must equal the direct output, byte for byte.
def same_output(t, run):
    paths = [os.path.join(out, n, "results", f"{t}.out") for n in ("direct", run)]
    if not all(os.path.exists(p) for p in paths):
        return False
    return open(paths[0], "rb").read() == open(paths[1], "rb").read()

def compare(run, label, section):
    """Prints how `run` compares with the direct run; returns the unexplained differences."""
    proxy = results(run)
    passed_proxy = {t for t, s in proxy.items() if s == "ok"}
    ignored = sorted(t for t in direct if direct[t] == "ignored" or proxy.get(t) == "ignored")
    allowed = allowed_differences(differences_path, section)
    failed_both = sorted(t for t, s in direct.items() if s == "failed" and proxy.get(t) == "failed")
    unequal = [t for t in failed_both if not same_output(t, run)]
    lost = sorted((passed_direct - passed_proxy - set(ignored)) | set(unequal))
    unexplained = [t for t in lost if t not in allowed]
    unused = sorted(set(allowed) - set(lost))
    seconds = open(os.path.join(out, run, "seconds")).read().strip()
    print(f"\n{label}: {len(passed_proxy)} passed ({seconds} s)")
    if failed_direct:
        print(f"  of those failing even direct, output identical: "
              f"{len(failed_both) - len(unequal)}/{len(failed_direct)}")
    if ignored:
        print(f"  ignorable per schedule (not counted): {' '.join(ignored)}")
    gained = sorted(passed_proxy - passed_direct - set(ignored))
    if gained:
        print(f"  passed only via proxy: {' '.join(gained)}")
    print(f"  differences (pass direct but not here, or fail both with different output): "
          f"{len(lost)}, allowed by section '{section}': {len(allowed)} listed")
    sections = diff_sections(run)
    for t in lost:
        state = proxy.get(t, "missing")
        note = f"allowed: {allowed[t]}" if t in allowed else "NOT ALLOWED"
        print(f"\n  - {t} ({state}; {note})")
        for line in sections.get(t, ["    (no diff section)"])[:12]:
            print(f"      {line}")
    if unused:
        print(f"\n  listed under '{section}' but passing: {' '.join(unused)}")
    return [f"{t} ({label})" for t in unexplained]

unexplained = compare("proxy", "through switchyard", "differences")
if routed:
    unexplained += compare("routed", "through switchyard with two replicas, reads routed",
                           "differences with replicas")
    commits = open(os.path.join(out, "routed", "commits")).read().split()
    print(f"  commits on cluster C's nodes (pg_stat_database): primary {commits[0]}, "
          f"replicas {commits[1]} and {commits[2]}")
print(f"\nresults: {out}  (direct/, proxy/, routed/: output.txt, regression.diffs; proxy*.log)")
if unexplained:
    print(f"FAIL: {len(unexplained)} difference(s) not in {differences_path}: "
          f"{' '.join(unexplained)}")
    sys.exit(1)
print("PASS: every test passing direct passes via the proxy, or is an allowed difference")
EOF
