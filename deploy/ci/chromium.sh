#!/usr/bin/env bash
# Installs Debian's chromium for the dashboard's browser test
# (deploy/compose/browser) when no Chromium is on the PATH yet. The test
# drives it headless; it never downloads a browser of its own.
set -euo pipefail
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then
    "$b" --version 2>/dev/null
    exit 0
  fi
done
echo "chromium missing: installing Debian's chromium"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
chromium --version 2>/dev/null
