#!/usr/bin/env bash
# npm test [-- PATTERN...]: set up, typecheck, the Python shim's pytest suite, then vitest (the `unit`
# project in parallel, then the `e2e` project on real TorchServes); the last line adds both up.
# With patterns, only the test files whose path contains one of them run (pytest's and vitest's).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p .work
rm -f .work/pytest.xml .work/vitest.json

pytest_files=(python_shim/tests)
if [ $# -gt 0 ]; then
  pytest_files=()
  while IFS= read -r file; do
    for pattern in "$@"; do
      case "$file" in *"$pattern"*) pytest_files+=("$file"); break ;; esac
    done
  done < <(find python_shim/tests -name 'test_*.py' | sort)
fi

echo "== typecheck" >&2
npx tsc --noEmit -p .
if [ ${#pytest_files[@]} -gt 0 ]; then
  echo "== pytest (python_shim)" >&2
  TSSERVE_TINY_MODEL="$PWD/.cache/tiny-llama" .venv/bin/python -m pytest -q "${pytest_files[@]}" --junitxml=.work/pytest.xml
fi
echo "== vitest" >&2
npx vitest run --passWithNoTests --reporter=default --reporter=json --outputFile.json=.work/vitest.json "$@"
node scripts/test-summary.mjs .work/pytest.xml .work/vitest.json
