#!/usr/bin/env bash
# The Buildbot peer: install Buildbot from PyPI into a throwaway virtualenv, then run
# bench/peer_buildbot.py with it (arguments pass through; --help lists them). Prints one JSON
# line. BUILDBOT_VENV=DIR reuses (or creates and keeps) a virtualenv at DIR instead.
set -euo pipefail
cd "$(dirname "$0")/.."

# buildbot-www is needed even without the web UI: the master's REST API refuses to start
# without it ("could not find buildbot-www").
BUILDBOT_VERSION=4.3.0
PYTHON=${PYTHON:-.venv/bin/python}

if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  exec "$PYTHON" bench/peer_buildbot.py --help
fi

if [ -n "${BUILDBOT_VENV:-}" ]; then
  venv=$BUILDBOT_VENV
else
  scratch=$(mktemp -d /tmp/kiteline-bench-buildbot-venv.XXXXXX)
  trap 'rm -rf "$scratch"' EXIT
  venv=$scratch/venv
fi

if [ ! -x "$venv/bin/buildbot" ]; then
  echo "[bench] buildbot: installing Buildbot $BUILDBOT_VERSION into $venv" >&2
  python3 -m venv "$venv"
  timeout 600 "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "buildbot==$BUILDBOT_VERSION" "buildbot-worker==$BUILDBOT_VERSION" \
    "buildbot-www==$BUILDBOT_VERSION" >&2
fi

timeout 1800 "$PYTHON" bench/peer_buildbot.py --buildbot-bin "$venv/bin" "$@"
