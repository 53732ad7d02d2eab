#!/usr/bin/env bash
# Installs the Debian packages switchyard needs to build, test, demo and benchmark: only the
# missing ones, so it is a fast no-op on a ready machine. Run as root (or with sudo available).
set -euo pipefail

packages=(
  cmake ninja-build clang libclang-rt-14-dev g++ make
  libabsl-dev libfmt-dev libcli11-dev librapidcheck-dev libpg-query-dev libprotobuf-c-dev libtomlplusplus-dev
  libssl-dev libgtest-dev libgmock-dev libbenchmark-dev
  postgresql-15 postgresql-client-15 postgresql-server-dev-15 pgbouncer python3
)

# One dpkg-query for all (it exits non-zero when it has never heard of one; that is fine). A
# package dpkg remembers but that is removed or half-installed counts as missing.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null |
  awk '$2 == "installed" {print $1}' || true)
missing=()
for package in "${packages[@]}"; do
  grep -qxF -- "$package" <<<"$installed" || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo=()
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null || { echo "error: not root and no sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi

echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Debian's postgresql package creates and starts a "main" cluster on port 5432. Nothing of
# ours uses it (tests make their own clusters on free ports), so stop it to free the port and
# the memory, and keep it from starting at boot.
if command -v pg_lsclusters >/dev/null &&
  pg_lsclusters -h 2>/dev/null | awk '$1 == 15 && $2 == "main" && $4 ~ /online/ {found = 1} END {exit !found}'; then
  "${sudo[@]}" pg_ctlcluster 15 main stop || true
fi
if [[ -f /etc/postgresql/15/main/start.conf ]]; then
  echo manual | "${sudo[@]}" tee /etc/postgresql/15/main/start.conf >/dev/null
fi
# The same holds for PgBouncer's own service: bench.sh starts its own instance.
if command -v systemctl >/dev/null && systemctl is-active --quiet pgbouncer 2>/dev/null; then
  "${sudo[@]}" systemctl stop pgbouncer || true
fi
echo "installed: ${missing[*]}" >&2
