#!/usr/bin/env bash
# The README's main command: set up .venv (first run only), plan the example with the offline System 2
# planner, and render the example character speaking the example speech with the shipped demo models.
#
#   bash scripts/demo.sh                                   # -> out/demo/character.mp4 + out/demo/plan.json
#   bash scripts/demo.sh my.png my.wav "she waves" out/me  # your own image, audio, prompt, output folder
#
# The plan is plain JSON (docs/SYSTEM2.md): edit it and rerun the generate line below to render the edit.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${1:-example_inputs/character.png}
AUDIO=${2:-example_inputs/speech.wav}
PROMPT=${3:-}
# The example character gets its own prompt, which opens with its description (README, "open the prompt with
# who acts"); your own image gets only what you pass.
if [ $# -lt 3 ] && [ "$IMAGE" = example_inputs/character.png ] && [ -f example_inputs/prompt.txt ]; then
  PROMPT=$(cat example_inputs/prompt.txt)
fi
OUT=${4:-out/demo}

bash scripts/setup.sh
P=.venv/bin/python
mkdir -p "$OUT"
name=$(basename "${IMAGE%.*}")
# 33-frame segments: what the demo MMDiT was trained on (its render_defaults), so each shot maps onto
# whole segments.
"$P" -m omnihuman_core plan --image "$IMAGE" --audio "$AUDIO" --prompt "$PROMPT" --offline \
  --segment-frames 33 --out "$OUT/plan.json"
"$P" -m omnihuman_core generate --image "$IMAGE" --audio "$AUDIO" --schedule "$OUT/plan.json" \
  --out "$OUT/$name.mp4"
echo "wrote $OUT/$name.mp4 and its plan $OUT/plan.json"
