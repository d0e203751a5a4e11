#!/usr/bin/env bash
# Installs Debian's docker-compose (1.29.x, the Python implementation) so that the tests can check
# the production topology in compose/docker-compose.yml with `docker-compose config`
# (compose/compose_test.go). `config` only parses, interpolates and validates the file against the
# Compose schema; it needs no Docker engine, and none is started. Idempotent and quiet: it does
# nothing when docker-compose is present.
set -euo pipefail

if command -v docker-compose >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps-docker-compose: docker-compose is missing; run as root or install it with" >&2
  echo "  apt-get install --no-install-recommends docker-compose" >&2
  exit 1
fi
# Test binaries of several packages may call this at once; one installs, the others wait for it
# and then find the command present.
exec 9>/var/lock/lineage-deps-docker-compose.lock
flock 9
if command -v docker-compose >/dev/null 2>&1; then
  exit 0
fi
echo "deps-docker-compose: installing docker-compose from Debian packages" >&2
export DEBIAN_FRONTEND=noninteractive
# Update the package lists at most once: before installing when they do not know the package (a
# fresh image has empty lists), or after an install that failed because they are stale.
updated=0
if ! apt-cache show docker-compose >/dev/null 2>&1; then
  apt-get update -qq -o DPkg::Lock::Timeout=300
  updated=1
fi
# --no-install-recommends: the recommended docker.io engine is not wanted (nothing runs here).
install() { apt-get install -o DPkg::Lock::Timeout=300 -y -qq --no-install-recommends docker-compose >/dev/null; }
if ! install; then
  [ "$updated" -eq 0 ] || exit 1
  apt-get update -qq -o DPkg::Lock::Timeout=300
  install
fi
command -v docker-compose >/dev/null 2>&1 || { echo "deps-docker-compose: docker-compose still missing after the install" >&2; exit 1; }
