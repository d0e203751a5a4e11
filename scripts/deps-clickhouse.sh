#!/usr/bin/env bash
# Installs the ClickHouse server and client from Debian packages (release 18.16 on bookworm) for the
# ClickHouse index tests, which start their own server from /usr/sbin/clickhouse-server with a
# throw-away configuration (internal/testenv/clickhouse.go). Idempotent and quiet: it does nothing
# when both binaries are present, so `make test` can call it every time.
#
# The package's postinst would start a system-wide server on :9000 and :8123 through invoke-rc.d.
# The tests do not want it (it would hold memory and the default ports on a shared 2-core machine),
# so when the machine has no policy-rc.d of its own (Docker images ship one that already denies
# every start) we install a temporary one that does, for the duration of the install only.
set -euo pipefail

if [ -x /usr/sbin/clickhouse-server ] && command -v clickhouse-client >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps-clickhouse: ClickHouse is missing; run as root or install it with" >&2
  echo "  apt-get install clickhouse-server clickhouse-client" >&2
  exit 1
fi

# Test binaries of several packages may call this at once; one installs, the others wait for it
# and then find the binaries present.
exec 9>/var/lock/lineage-deps-clickhouse.lock
flock 9
if [ -x /usr/sbin/clickhouse-server ] && command -v clickhouse-client >/dev/null 2>&1; then
  exit 0
fi

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# Temporary, from lineage scripts/deps-clickhouse.sh: do not start services.\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

echo "deps-clickhouse: installing clickhouse-server and clickhouse-client from Debian packages" >&2
export DEBIAN_FRONTEND=noninteractive
# Update the package lists at most once: before installing when they do not know the package (a
# fresh image has empty lists), or after an install that failed because they are stale (a mirror
# that has moved on to a newer Debian revision answers 404 for the old one).
updated=0
if ! apt-cache show clickhouse-server >/dev/null 2>&1; then
  apt-get update -qq -o DPkg::Lock::Timeout=300
  updated=1
fi
install() { apt-get install -o DPkg::Lock::Timeout=300 -y -qq --no-install-recommends clickhouse-server clickhouse-client >/dev/null; }
if ! install; then
  [ "$updated" -eq 0 ] || exit 1
  apt-get update -qq -o DPkg::Lock::Timeout=300
  install
fi
