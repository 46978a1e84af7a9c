#!/usr/bin/env bash
# Installs the Python peer of the stream-reader benchmark (`dev/bench/reader-peers.ts`): tweepy's
# StreamingClient, in a virtualenv at .local/bench-venv (PyPI, pinned). Only the benchmark uses it.
# Idempotent: when the venv already has the pinned tweepy it only prints the version.
# Exits non-zero when python3 (with venv) is missing or pip cannot install; the benchmark then
# reports the peer as "not available" instead of failing.
set -euo pipefail
cd "$(dirname "$0")/../.."

TWEEPY_VERSION=4.17.0
VENV=.local/bench-venv
PY="$VENV/bin/python"

if [ -x "$PY" ] && "$PY" -c "import tweepy, sys; sys.exit(tweepy.__version__ != '$TWEEPY_VERSION')" 2>/dev/null; then
  echo "tweepy $TWEEPY_VERSION present in $VENV"
  exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
  echo "install-bench-python: python3 not found (apt-get install -y python3 python3-venv)" >&2
  exit 1
fi

echo "creating $VENV and installing tweepy==$TWEEPY_VERSION (pip)…" >&2
mkdir -p .local
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "tweepy==$TWEEPY_VERSION"
echo "tweepy $("$PY" -c 'import tweepy; print(tweepy.__version__)') installed in $VENV"
