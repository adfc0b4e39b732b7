#!/usr/bin/env bash
# Creates or updates a Python venv with tsserve's Python side (TorchServe 0.12,
# torch, transformers, ...): used by scripts/setup.sh for this checkout's .venv
# and by `tsserve setup` for a user's project. Idempotent: the requirement
# files' hash is stamped into the venv, and nothing runs while it matches.
#
#   setup-venv.sh [--python PY] [--editable DIR] VENV REQUIREMENTS.txt...
set -euo pipefail
python=python3
editable=
while [ $# -gt 0 ]; do
  case "$1" in
    --python) python=$2; shift 2 ;;
    --editable) editable=$2; shift 2 ;;
    *) break ;;
  esac
done
if [ $# -lt 2 ]; then
  echo "usage: setup-venv.sh [--python PY] [--editable DIR] VENV REQUIREMENTS.txt..." >&2
  exit 2
fi
venv=$1
shift
for file in "$@"; do
  [ -f "$file" ] || { echo "setup-venv: requirements file not found: $file" >&2; exit 2; }
done

want=$(sha256sum "$@" | sha256sum | cut -c1-16)
if [ "$(cat "$venv/.tsserve-stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "setup: creating the Python venv at $venv (first run takes a few minutes)" >&2
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
args=()
for file in "$@"; do args+=(-r "$file"); done
"$venv/bin/pip" install -q --disable-pip-version-check "${args[@]}" >&2
if [ -n "$editable" ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -e "$editable" >&2
fi
echo "$want" > "$venv/.tsserve-stamp"
