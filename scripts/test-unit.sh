#!/usr/bin/env bash
# npm run test:unit [-- PATTERN...]: the inner loop, no server and no model. The typecheck
# (incremental: only what changed since the last run is checked again) runs beside vitest's
# `unit` project (unit and contract tests); it fails if either fails.
set -uo pipefail
cd "$(dirname "$0")/.."
# Property tests run a tenth of their cases here; npm test runs them all (test/unit/property-runs.ts).
export TSSERVE_PROPERTY_FRACTION=${TSSERVE_PROPERTY_FRACTION:-0.1}
mkdir -p .work

# Formatting and lint, TypeScript/JSON (biome.jsonc) and Python (ruff.toml): a finding fails the run; `npm run format` fixes formatting.
npm run -s lint
lint_status=$?

npx tsc --noEmit -p . --incremental --tsBuildInfoFile .work/tsc.tsbuildinfo &
typecheck=$!
npx vitest run --project unit "$@"
status=$?
[ "$lint_status" -eq 0 ] || { echo "test:unit: the linters found problems (above)" >&2; status=1; }
wait "$typecheck" || { echo "test:unit: the typecheck failed (above)" >&2; status=1; }
exit "$status"
