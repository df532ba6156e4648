#!/usr/bin/env bash
# Installs what the console needs to build and be tested: its npm packages (exactly as
# package-lock.json pins them) and, for the browser tests, Debian's chromium when it is
# missing. Runs from anywhere; safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v npm >/dev/null; then
  echo "console/setup.sh: npm is missing; install Node.js 20.19 or newer (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
npm ci --no-audit --no-fund

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    echo "console/setup.sh: /usr/bin/chromium is missing; the browser tests need Debian's chromium package (sudo apt-get install chromium)" >&2
    exit 1
  fi
fi
