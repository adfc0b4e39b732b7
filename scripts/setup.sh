#!/usr/bin/env bash
# Idempotent set-up of everything tsserve's demo and tests need:
# npm packages, the Python venv at .venv, a JDK, and the tiny model.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

if [ ! -d node_modules ] || [ "$(cat node_modules/.tsserve-stamp 2>/dev/null)" != "$(stamp package.json package-lock.json)" ]; then
  echo "setup: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  stamp package.json package-lock.json > node_modules/.tsserve-stamp
fi

# The prebuilt CLI (about 0.5 s): bin/tsserve.mjs runs it while it is newer than src/.
node --import tsx scripts/build-cli.ts

if ! command -v java >/dev/null 2>&1; then
  echo "setup: installing a JDK (openjdk-17-jre-headless)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >&2
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >&2; fi
fi

want=$(stamp python_shim/requirements.txt python_shim/requirements-dev.txt)
if [ "$(cat .venv/.tsserve-stamp 2>/dev/null)" != "$want" ]; then
  echo "setup: creating the Python venv at .venv (first run takes a few minutes)" >&2
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r python_shim/requirements.txt -r python_shim/requirements-dev.txt >&2
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e python_shim >&2
  echo "$want" > .venv/.tsserve-stamp
fi

if [ ! -f .cache/tiny-llama/model.safetensors ] || [ "$(cat .cache/tiny-llama/.tsserve-stamp 2>/dev/null)" != "$(stamp scripts/make-tiny-model.py)" ]; then
  echo "setup: writing the tiny Llama model to .cache/tiny-llama" >&2
  .venv/bin/python scripts/make-tiny-model.py --out .cache/tiny-llama >&2
  stamp scripts/make-tiny-model.py > .cache/tiny-llama/.tsserve-stamp
fi
