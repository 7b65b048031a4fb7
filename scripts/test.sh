#!/usr/bin/env bash
# The one command that runs every test on a fresh machine: sets up .venv, then runs pytest and the
# widget's node tests. Extra arguments go to pytest (e.g. scripts/test.sh -k chainer).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if command -v node >/dev/null 2>&1 && [ -d tests/web ]; then
  node --test tests/web/
else
  echo "note: node not found; skipping the widget tests in tests/web"
fi
.venv/bin/python -m pytest -q "$@"
