#!/usr/bin/env bash
# Installs what the Trillian tests (internal/testenv.StartTrillian) need on a fresh Debian
# machine: MariaDB's server and client binaries, which is Trillian's production storage.
#
# Only the -core packages are installed: they hold mariadbd, mariadb-install-db and the mariadb
# client, and no init scripts or systemd units, so nothing starts a system-wide database. The
# tests run their own private mariadbd under a temporary directory on a free loopback port.
# Trillian's own binaries are not installed here: testenv builds them from the Go module at the
# version pinned in go.mod and caches them.
#
# Idempotent and quiet; called by testenv when MariaDB is missing, and fit for `make deps`.
set -euo pipefail
need=()
for bin in mariadbd mariadb-install-db mariadb my_print_defaults; do
  if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$bin" >/dev/null 2>&1; then
    need+=("$bin")
  fi
done
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps-trillian: MariaDB is missing (${need[*]}); run as root or: apt-get install mariadb-server-core mariadb-client-core" >&2
  exit 1
fi
echo "deps-trillian: installing MariaDB (mariadb-server-core, mariadb-client-core) from Debian packages" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  mariadb-server-core mariadb-client-core >/dev/null
