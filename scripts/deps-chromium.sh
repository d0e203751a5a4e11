#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests of the web UI (web/jstest), which drive it
# headless through chromedp from /usr/bin/chromium. Idempotent and quiet: it does nothing when
# the binary is present, so `make test` can call it every time.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps-chromium: chromium is missing; run as root or install it with" >&2
  echo "  apt-get install --no-install-recommends chromium" >&2
  exit 1
fi

# Test binaries of several packages may call this at once; one installs, the others wait for it
# and then find the binary present.
exec 9>/var/lock/lineage-deps-chromium.lock
flock 9
if [ -x /usr/bin/chromium ]; then
  exit 0
fi

echo "deps-chromium: installing chromium from Debian packages" >&2
export DEBIAN_FRONTEND=noninteractive
# Update the package lists at most once: before installing when they do not know the package (a
# fresh image has empty lists), or after an install that failed because they are stale.
updated=0
if ! apt-cache show chromium >/dev/null 2>&1; then
  apt-get update -qq -o DPkg::Lock::Timeout=300
  updated=1
fi
install() { apt-get install -o DPkg::Lock::Timeout=300 -y -qq --no-install-recommends chromium >/dev/null; }
if ! install; then
  [ "$updated" -eq 0 ] || exit 1
  apt-get update -qq -o DPkg::Lock::Timeout=300
  install
fi
