#!/usr/bin/env bash
# npm test: set up, typecheck, the Python shim's pytest suite, then vitest
# (unit, contract and end-to-end on a real TorchServe); the last line adds both up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p .work
echo "== typecheck" >&2
npx tsc --noEmit -p .
echo "== pytest (python_shim)" >&2
TSSERVE_TINY_MODEL="$PWD/.cache/tiny-llama" .venv/bin/python -m pytest -q python_shim/tests --junitxml=.work/pytest.xml
echo "== vitest" >&2
npx vitest run --reporter=default --reporter=json --outputFile.json=.work/vitest.json "$@"
node scripts/test-summary.mjs .work/pytest.xml .work/vitest.json
