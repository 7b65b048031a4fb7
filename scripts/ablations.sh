#!/usr/bin/env bash
# The paper's Table 1 in miniature (BENCHMARKS.md, "Ablation table"): every trained variant of
# omnihuman_core.train.objective.ABLATIONS gets the same MMDiT training budget from the same VAE and latent
# cache, split over its stages as the full schedule splits it (stages.FULL_SCHEDULE: base 40 %, stage 1 18 %,
# stage 2 42 %), then every model is rendered on the same held-out clips with the same seed and settings and
# scored by the probes. The no-warm-up variant is the paper's: its text+video base is the full row's (the paper
# starts every variant from one pretrained text+video model), then every branch trains jointly for the stage-1 +
# stage-2 share, without the stage-2 rebuild.
#
#   bash scripts/ablations.sh                 # defaults below; rerunning resumes every run and skips finished ones
#   MINUTES=20 CLIPS=20 bash scripts/ablations.sh
#   TRAIN_STEPS=750 bash scripts/ablations.sh   # equal optimiser steps instead of minutes (fair on a shared machine)
#   FULL_RUN=runs/demo_work bash scripts/ablations.sh   # the full row IS a finished `train demo` run (see below)
#   ROWS="full no_reasoning no_mm_warmup" bash scripts/ablations.sh   # only these rows now (the rest in a later sitting)
#   PLAN=models/demo/train_plan.json VAE=models/demo/vae.safetensors TEXT_ENCODER=models/demo/text_encoder.safetensors \
#     ROWS=no_reference bash scripts/ablations.sh   # a row at the shipped budget without the shipped run's work folder
#
# FULL_RUN: the work folder of a finished `train demo` run. Its base / stage 1 / stage 2 files become the full row
# (linked, not retrained), every other row gets the optimiser steps that run's stages took (its plan.json), and its
# float32 VAE, latent cache and text encoder are the defaults for VAE / CACHE / TEXT_ENCODER: the table then
# ablates the shipped recipe at the shipped budget.
#
# Needs: the synthetic dataset (DATA), a trained VAE (VAE) and a pretrained text encoder (TEXT_ENCODER, `train text`
# or the text step of `train demo`), which every variant keeps frozen: the rows then differ only in what the
# table compares (a text encoder trained jointly with each variant would differ between rows, and it collapses;
# docs/TRAINING.md, "Text encoder"). Variants an earlier version of this script trained carry their own encoder:
# delete WORK to retrain them.
# The latent cache of `train demo` is reused when CACHE points at it and VAE is the file that built it: the
# float32 <work>/vae/vae.safetensors of that run (models/demo/vae.safetensors is a half-precision export, other
# weights to the cache, which would then be rebuilt).
# PLAN: the plan.json of a finished `train demo` run (default: FULL_RUN's; models/demo/train_plan.json is the shipped
# model's). Every row trains the optimiser steps that run's stages took, as with FULL_RUN, but without FULL_RUN
# nothing is linked: a full row asked for is retrained, and VAE / TEXT_ENCODER default as without FULL_RUN (pass the
# shipped files to ablate the shipped recipe on another machine; they are half-precision exports of that run's).
set -euo pipefail
cd "$(dirname "$0")/.."
P=${PYTHON:-.venv/bin/python}
DATA=${DATA:-data/synth}
FULL_RUN=${FULL_RUN:-}        # a finished `train demo` work folder whose MMDiT stages are the full row
[ -z "$FULL_RUN" ] || [ -f "$FULL_RUN/plan.json" ] || {
  echo "ablations.sh: FULL_RUN=$FULL_RUN has no plan.json; point it at the --work folder of a finished train demo run" >&2; exit 1; }
if [ -n "$FULL_RUN" ] && [ -n "${PLAN:-}" ] && [ "$PLAN" != "$FULL_RUN/plan.json" ]; then
  echo "ablations.sh: PLAN=$PLAN with FULL_RUN=$FULL_RUN: the full row is that run, so its own plan.json gives every row's steps; drop PLAN" >&2
  exit 1
fi
PLAN=${PLAN:-${FULL_RUN:+$FULL_RUN/plan.json}}
[ -z "$PLAN" ] || [ -f "$PLAN" ] || {
  echo "ablations.sh: PLAN=$PLAN is not a file; give the plan.json of a finished train demo run (models/demo/train_plan.json is the shipped model's)" >&2; exit 1; }
VAE=${VAE:-${FULL_RUN:+$FULL_RUN/vae/vae.safetensors}}
VAE=${VAE:-models/demo/vae.safetensors}
TEXT_ENCODER=${TEXT_ENCODER:-${FULL_RUN:-runs/demo}/text/text_encoder.safetensors}
WORK=${WORK:-runs/ablations}
ALL_ROWS="full no_reasoning cross_attention_audio no_mm_warmup reference_image no_reference"
ROWS=${ROWS:-$ALL_ROWS}       # rows to train and render in this sitting
for r in $ROWS; do case " $ALL_ROWS " in *" $r "*) ;; *) echo "ablations.sh: unknown row '$r' in ROWS; rows are: $ALL_ROWS" >&2; exit 1;; esac; done
CACHE=${CACHE:-${FULL_RUN:+$FULL_RUN/latent_cache}}
CACHE=${CACHE:-$WORK/latent_cache}
MINUTES=${MINUTES:-8}         # MMDiT training minutes per variant (all stages together)
TRAIN_STEPS=${TRAIN_STEPS:-}  # if set: optimiser steps per variant instead (same split), MINUTES is ignored
CLIPS=${CLIPS:-12}            # held-out clips rendered per row
STEPS=${STEPS:-}              # sampler steps (default: the model's own, 20)
TEXT_SCALE=${TEXT_SCALE:-}    # guidance scales for every row (default: each model's own render_defaults)
AUDIO_SCALE=${AUDIO_SCALE:-}
RESULTS=${RESULTS:-results/ablations}
# reference: the pseudo-last-frame rows also start on the reference image, as the shipped demo renders (a training
# stage's own file does not carry that choice, so it is passed here); generated: they generate their first frame.
# The reference-image and no-reference rows always generate it, as their models render by default
# (RenderSettings.for_model: those modes condition on the image only their own way; pinning it would give the
# no-reference row a reference).
FIRST_FRAME=${FIRST_FRAME:-reference}
case $FIRST_FRAME in
  reference) PIN=--first-frame-from-reference ;;
  generated) PIN=--no-first-frame-from-reference ;;
  *) echo "ablations.sh: FIRST_FRAME must be reference or generated, got '$FIRST_FRAME'" >&2; exit 1 ;;
esac
mkdir -p "$WORK" "$RESULTS"
[ -f "$TEXT_ENCODER" ] || { echo "ablations.sh: no text encoder at $TEXT_ENCODER; pretrain one with
  $P -m omnihuman_core train text --data $DATA --out $TEXT_ENCODER --work runs/demo/text/run --minutes 3
or set TEXT_ENCODER" >&2; exit 1; }
# The demo recipe's settings (omnihuman_core/train/demo.py), so the full row is that recipe on a smaller budget
# and the cache of `train demo` (one window per clip) is reused as is.
read -r PREC LR_BASE LR_S1 LR_S2 FACE MOUTH MNOISE < <("$P" -c "
from omnihuman_core.train.demo import STAGE_LR, FACE_WEIGHT, MOUTH_WEIGHT, MOTION_NOISE
from omnihuman_core.train.loop import fast_precision
import torch
print(fast_precision('cuda' if torch.cuda.is_available() else 'cpu'), STAGE_LR['base'], STAGE_LR['stage1'], STAGE_LR['stage2'], FACE_WEIGHT, MOUTH_WEIGHT, MOTION_NOISE)")
[ -n "${MNOISE:-}" ] || { echo "ablations.sh: could not read the demo recipe from omnihuman_core (is $P set up?)" >&2; exit 1; }
PREC=${PRECISION:-$PREC}

# Budget flags of each stage: minutes, or steps when TRAIN_STEPS is set (a time budget gives a variant fewer
# steps whenever something else runs on the machine; a step budget does not).
budget() {
  if [ -n "$TRAIN_STEPS" ]; then echo "--steps $("$P" -c "print(max(1, round($TRAIN_STEPS * $1)))") --minutes 0"
  else echo "--minutes $("$P" -c "print(round($MINUTES * $1, 3))")"; fi
}
if [ -n "$PLAN" ]; then
  # The steps each MMDiT stage of that run took; refused unless all three finished (a partial run is no budget).
  read -r S_BASE S_S1 S_S2 < <("$P" -c "
import json, sys
try: plan = json.load(open('$PLAN'))
except (OSError, ValueError) as e: sys.exit(f'ablations.sh: PLAN=$PLAN is not a readable plan.json ({e}); point FULL_RUN at a train demo --work folder or PLAN at its plan.json')
st = plan.get('stages', {})
open_ = [s for s in ('base', 'stage1', 'stage2') if not st.get(s, {}).get('done')]
if open_: sys.exit(f'ablations.sh: PLAN=$PLAN: the run has not finished {\" \".join(open_)}; finish that run first (train demo --work <its folder>)')
if plan.get('timestep_shift', 1.0) != 1.0: sys.exit('ablations.sh: PLAN=$PLAN trained at timestep shift ' + str(plan['timestep_shift']) + '; the rows train at the default 1')
print(st['base']['steps'], st['stage1']['steps'], st['stage2']['steps'])") || exit 1
  B_BASE=(--steps "$S_BASE" --minutes 0); B_S1=(--steps "$S_S1" --minutes 0); B_S2=(--steps "$S_S2" --minutes 0)
  B_REST=(--steps $((S_S1 + S_S2)) --minutes 0)
  mkdir -p "$WORK"
  # One WORK folder holds rows of one budget: rows trained to other step counts would not compare.
  if [ -f "$WORK/budget.txt" ] && [ "$(cat "$WORK/budget.txt")" != "$S_BASE $S_S1 $S_S2" ]; then
    echo "ablations.sh: WORK=$WORK holds rows trained for steps $(cat "$WORK/budget.txt") (base stage1 stage2), not $S_BASE $S_S1 $S_S2 from $PLAN; give this budget its own WORK (and RESULTS)" >&2
    exit 1
  fi
  echo "$S_BASE $S_S1 $S_S2" > "$WORK/budget.txt"
  echo "ablations.sh: every row trains the steps of $PLAN (base $S_BASE / stage 1 $S_S1 / stage 2 $S_S2)"
else
  read -r -a B_BASE <<< "$(budget 0.40)"; read -r -a B_S1 <<< "$(budget 0.18)"
  read -r -a B_S2 <<< "$(budget 0.42)"; read -r -a B_REST <<< "$(budget 0.60)"
fi
if [ -n "$FULL_RUN" ]; then
  mkdir -p "$WORK/full"
  # One WORK folder ablates one run: rows trained to another run's step counts would not compare with this one.
  here=$(cd "$FULL_RUN" && pwd -P)
  if [ -f "$WORK/full/full_run.txt" ] && [ "$(cat "$WORK/full/full_run.txt")" != "$here" ]; then
    echo "ablations.sh: WORK=$WORK holds the rows of FULL_RUN=$(cat "$WORK/full/full_run.txt"), not $here; give this run its own WORK (and RESULTS)" >&2
    exit 1
  fi
  echo "$here" > "$WORK/full/full_run.txt"
  for pair in base:base stage1:stage1 stage2:mmdit; do
    [ -f "$WORK/full/${pair#*:}.safetensors" ] || ln -f "$FULL_RUN/${pair%%:*}/mmdit.safetensors" "$WORK/full/${pair#*:}.safetensors" \
      2>/dev/null || cp "$FULL_RUN/${pair%%:*}/mmdit.safetensors" "$WORK/full/${pair#*:}.safetensors"
  done
  echo "ablations.sh: full row = $FULL_RUN (steps base $S_BASE / stage 1 $S_S1 / stage 2 $S_S2; every other row the same)"
fi
wanted() { case " $ROWS " in *" $1 "*) return 0;; *) return 1;; esac; }

train() {  # name, extra args for every stage
  local name=$1; shift
  local w=$WORK/$name
  [ -f "$w/mmdit.safetensors" ] && return 0
  local common=(--data "$DATA" --vae "$VAE" --cache "$CACHE" --text-encoder "$TEXT_ENCODER" --export-dtype float32
                --precision "$PREC" --batch-size 8 --windows-per-clip 1 --face-weight "$FACE" --motion-noise "$MNOISE")
  # The mouth weight, as in the recipe, only where there is audio to explain the mouth (not the base).
  if [ "$name" = no_mm_warmup ]; then
    "$P" -m omnihuman_core train mmdit --stage joint "${common[@]}" --mouth-weight "$MOUTH" "$@" "${B_REST[@]}" --lr "$LR_S1" \
      --init "$WORK/full/base.safetensors" --out "$w/mmdit.safetensors" --work "$w/joint"
    return 0
  fi
  "$P" -m omnihuman_core train mmdit --stage base "${common[@]}" "$@" "${B_BASE[@]}" --lr "$LR_BASE" \
    --out "$w/base.safetensors" --work "$w/base"
  "$P" -m omnihuman_core train mmdit --stage stage1 "${common[@]}" --mouth-weight "$MOUTH" "$@" "${B_S1[@]}" --lr "$LR_S1" \
    --init "$w/base.safetensors" --out "$w/stage1.safetensors" --work "$w/stage1"
  "$P" -m omnihuman_core train mmdit --stage stage2 "${common[@]}" --mouth-weight "$MOUTH" "$@" "${B_S2[@]}" --lr "$LR_S2" \
    --base "$w/base.safetensors" --stage1 "$w/stage1.safetensors" --out "$w/mmdit.safetensors" --work "$w/stage2"
}

evaluate() {  # label, model name, extra evaluate args
  local label=$1 name=$2; shift 2
  [ -f "$RESULTS/$label.json" ] && return 0
  "$P" -m omnihuman_core evaluate run --data "$DATA" --split test --clips "$CLIPS" ${STEPS:+--steps "$STEPS"} \
    ${TEXT_SCALE:+--text-scale "$TEXT_SCALE"} ${AUDIO_SCALE:+--audio-scale "$AUDIO_SCALE"} \
    --mmdit "$WORK/$name/mmdit.safetensors" --vae "$VAE" --text-encoder "$TEXT_ENCODER" \
    --label "$label" --out "$RESULTS/$label.json" "$@"
}

# Each row is rendered as soon as it is trained, so a sitting cut short keeps the rows it finished.
# The full row's base is trained (or linked) whenever a row needs it: no_mm_warmup starts from it.
if wanted full || wanted no_reasoning || wanted no_mm_warmup; then train full; fi
if wanted full; then evaluate full full "$PIN"; fi
if wanted no_reasoning; then evaluate no_reasoning full --prompts generic "$PIN"; fi
if wanted no_mm_warmup; then train no_mm_warmup; evaluate no_mm_warmup no_mm_warmup "$PIN"; fi
if wanted cross_attention_audio; then
  train cross_attention_audio --audio-mode cross_attention
  evaluate cross_attention_audio cross_attention_audio "$PIN"; fi
if wanted reference_image; then
  train reference_image --recipe-reference-mode reference
  evaluate reference_image reference_image --reference-mode reference --no-first-frame-from-reference; fi
if wanted no_reference; then
  train no_reference --recipe-reference-mode none
  evaluate no_reference no_reference --reference-mode none --no-first-frame-from-reference; fi

"$P" -m omnihuman_core evaluate table "$RESULTS"/*.json --out-md "$RESULTS/table.md"
cat "$RESULTS/table.md"
