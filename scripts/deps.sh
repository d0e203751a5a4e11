#!/usr/bin/env bash
# Installs what a fresh Debian machine needs to build and test Lineage: a C compiler for the
# cgo SQLite driver. Everything else comes from the Go module proxy. Idempotent and quiet.
set -euo pipefail
if ! command -v gcc >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: gcc is missing; install it (apt-get install gcc) or run as root" >&2
    exit 1
  fi
  echo "deps: installing gcc from Debian packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
fi
