#!/usr/bin/env bash
# The one command that runs every test on a fresh machine: sets up .venv, then runs pytest and the
# widget's node tests. Extra arguments go to pytest (e.g. scripts/test.sh -k chainer).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
shopt -s nullglob
web_tests=(tests/web/*.test.mjs)
if command -v node >/dev/null 2>&1 && [ ${#web_tests[@]} -gt 0 ]; then
  node --test "${web_tests[@]}"
else
  echo "note: node not found; skipping the widget tests in tests/web"
fi
.venv/bin/python -m pytest -q "$@"
