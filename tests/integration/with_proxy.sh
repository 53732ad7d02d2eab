#!/usr/bin/env bash
# Runs a test command against a fresh cluster with the proxy in front of it, and tears both
# down afterwards whatever happens. The command sees PRIMARY_PORT, PROXY_PORT, PROXY_PID (empty
# for the `direct` stand-in), PROXY_LOG, TEST_TMP (a scratch dir) and PG_BINDIR.
#
# usage: with_proxy.sh BINARY [serve flags...] -- COMMAND [ARGS...]
#   serve flags default to `--auth-type trust --workers 2`
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/pgcluster.sh"

binary=${1:?usage: with_proxy.sh BINARY [serve flags...] -- COMMAND [ARGS...]}
shift
flags=()
while (($#)) && [[ $1 != -- ]]; do
  flags+=("$1")
  shift
done
(($#)) || pgc_die "with_proxy.sh: no -- COMMAND given"
shift

pgc_init
primary_port=$(free_port)
pg_create_primary "$PGC_ROOT/primary" "$primary_port"
pg_start "$PGC_ROOT/primary"
proxy_start "$binary" "$primary_port" "$PGC_ROOT/proxy.log" "${flags[@]}"

export PRIMARY_PORT=$primary_port PROXY_PORT PROXY_PID PROXY_LOG TEST_TMP=$PGC_ROOT PG_BINDIR
status=0
"$@" || status=$?
if ((status)) && [[ -n $PROXY_PID ]]; then
  echo "--- last lines of the proxy's log ($PROXY_LOG):"
  tail -n 20 "$PROXY_LOG"
fi
exit "$status"
