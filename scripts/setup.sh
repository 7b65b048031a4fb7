#!/usr/bin/env bash
# Create .venv in the repo root with everything the library, tests and benchmarks need.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# System tools: espeak-ng (speech for examples and the synthetic world), sox. Optional; installed
# when we are root on a Debian-like machine and they are missing.
if ! command -v espeak-ng >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq espeak-ng sox >/dev/null) \
    || echo "note: could not apt-get install espeak-ng; the built-in fallback speech generator is used"
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
# torch + torchaudio of matching versions; ComfyUI users already have them.
if ! "$VPY" -c "import torch, torchaudio" >/dev/null 2>&1; then
  "$VPY" -m pip install -q "torch==${TORCH_VERSION:-2.9.1}" "torchaudio==${TORCHAUDIO_VERSION:-2.9.*}" 2> >(grep -v "is ignored: it is neither" >&2)
fi
"$VPY" -m pip install -q -r requirements-dev.txt 2> >(grep -v "is ignored: it is neither" >&2)
echo "environment ready: .venv ($("$VPY" -c 'import torch; print("torch", torch.__version__)'))"
