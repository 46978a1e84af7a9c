#!/usr/bin/env bash
# Makes a fresh clone runnable: npm dependencies and the local stack's tools (and, for the test
# suite, the deploy-validation tools and Chromium). Idempotent and quick when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund
fi
bash dev/tools/install-stack-tools.sh
for extra in "$@"; do
  case "$extra" in
    --test)
      [ -f dev/tools/install-deploy-tools.sh ] && bash dev/tools/install-deploy-tools.sh
      [ -f dev/tools/install-browser.sh ] && bash dev/tools/install-browser.sh
      ;;
  esac
done
