#!/usr/bin/env bash
# Installs Debian's prometheus package for its promtool, which checks the alerting rules in
# compose/prometheus/alerts.yml (compose/compose_test.go). Idempotent and quiet: it does nothing
# when promtool is present. The package's service is not started by the tests.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps-promtool: promtool is missing; run as root or install it with" >&2
  echo "  apt-get install --no-install-recommends prometheus" >&2
  exit 1
fi
exec 9>/var/lock/lineage-deps-promtool.lock
flock 9
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
echo "deps-promtool: installing prometheus (for promtool) from Debian packages" >&2
export DEBIAN_FRONTEND=noninteractive
updated=0
if ! apt-cache show prometheus >/dev/null 2>&1; then
  apt-get update -qq -o DPkg::Lock::Timeout=300
  updated=1
fi
install() { apt-get install -o DPkg::Lock::Timeout=300 -y -qq --no-install-recommends prometheus >/dev/null; }
if ! install; then
  [ "$updated" -eq 0 ] || exit 1
  apt-get update -qq -o DPkg::Lock::Timeout=300
  install
fi
