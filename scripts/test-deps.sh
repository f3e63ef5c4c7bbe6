#!/usr/bin/env bash
# Installs what the test suite needs beyond Go, on a fresh Debian machine:
# Chromium, for the test that renders the leak inspector page. Safe to rerun.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo "test-deps: installing Debian's chromium (for the inspector page test)..."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "test-deps: not root and no sudo: install the 'chromium' package yourself; the browser test will be skipped" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version
