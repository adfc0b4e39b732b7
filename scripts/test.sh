#!/usr/bin/env bash
# npm test [-- PATTERN...]: set up, typecheck, then every test on this machine's two cores at once:
# the Python shim's pytest suite in the background (its output follows at the end), and vitest's
# `unit` project (files in parallel) beside its two end-to-end lanes, `e2e-shared` and `e2e-own`
# (vitest.config.ts). The last line adds all the runners up. With patterns, only the test files whose
# path contains one of them run, pytest's and vitest's. docs/testing.md says which command to run when.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p .work
# Every property test runs its full count of cases (test:unit runs a tenth: test/unit/property-runs.ts).
export TSSERVE_PROPERTY_FRACTION=1
rm -f .work/pytest.xml .work/pytest.log .work/vitest-*.json

# No runner may hang a CI run: past its limit (normally each ends within 12 minutes here), timeout ends
# it and what it started in its process group, and the run fails saying which.
LIMIT_S=${TSSERVE_TEST_LIMIT_S:-1800}
limited() {
  local name=$1
  shift
  local rc=0
  timeout --kill-after=30 "$LIMIT_S" "$@" || rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "== $name: still running after ${LIMIT_S} s: stopped. Processes left:" >&2
    ps -eo pid,ppid,etimes,args --sort=start_time | grep -E "java|model_service_worker|handler.mjs|VLLM|vitest|pytest" | grep -v grep >&2 || true
  fi
  return "$rc"
}

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
npx tsc --noEmit -p . --incremental --tsBuildInfoFile .work/tsc.tsbuildinfo

# Formatting and lint, TypeScript/JSON (biome.jsonc) and Python (ruff.toml): a finding fails the run, as a type error does.
echo "== lint (biome, ruff)" >&2
npm run -s lint

pytest_pid=
if [ ${#pytest_files[@]} -gt 0 ]; then
  echo "== pytest (python_shim, in the background: its report follows vitest's)" >&2
  TSSERVE_TINY_MODEL="$PWD/.cache/tiny-llama" limited pytest .venv/bin/python -m pytest -q "${pytest_files[@]}" --junitxml=.work/pytest.xml > .work/pytest.log 2>&1 &
  pytest_pid=$!
fi

vitest() {
  local project=$1
  shift
  limited "vitest $project" npx vitest run --project "$project" --passWithNoTests --reporter=default --reporter=json --outputFile.json=".work/vitest-$project.json" "$@"
}
# One e2e lane, its lines marked with its name (the two lanes print at the same time).
lane() {
  local project=$1
  shift
  vitest "$project" "$@" 2>&1 | sed -u "s/^/[$project] /"
}

status=0
# Every runner at once: the run is CPU-bound, and a lane that waits for another leaves a core idle
# at the end (run 16: e2e-own waited 208 s for the unit tests and then ran alone for 90 s).
echo "== vitest: unit, e2e-shared and e2e-own, side by side" >&2
lane e2e-shared "$@" &
shared=$!
lane e2e-own "$@" &
own=$!
lane unit "$@" || status=1
wait "$shared" || status=1
wait "$own" || status=1
if [ -n "$pytest_pid" ]; then
  wait "$pytest_pid" || status=1
  echo "== pytest (python_shim)" >&2
  cat .work/pytest.log
fi
node scripts/test-summary.mjs .work/pytest.xml .work/vitest-*.json
exit "$status"
