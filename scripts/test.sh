#!/usr/bin/env bash
# npm test: set up, typecheck, the Python shim's pytest suite, then vitest
# (unit, contract and end-to-end on a real TorchServe).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== typecheck" >&2
npx tsc --noEmit -p .
echo "== pytest (python_shim)" >&2
TSSERVE_TINY_MODEL="$PWD/.cache/tiny-llama" .venv/bin/python -m pytest -q python_shim/tests
echo "== vitest" >&2
npx vitest run "$@"
