"""How much an MMDiT uses each part of its caption: the flow loss on cached training windows with the window's
own caption, with only its action phrase swapped for another action's, with another window's caption, and with
the null caption.

A model that reads the action words predicts the window worse when the action phrase is swapped; a model that
only reads the caption's looks (character, clothes, camera, mood) does not. The draws are fixed and the same
for every model and caption (no pinned first frames, the pseudo last frame given, no dropout, one flow time per
row), and the loss is the plain mean over every cell (the recipe's face / mouth / motion weights set to 1), so
numbers compare across models trained with different weights.

    .venv/bin/python scripts/caption_sensitivity.py --cache runs/demo/latent_cache \\
        --text-encoder runs/demo/text/text_encoder.safetensors runs/demo/base/mmdit.safetensors models/demo/mmdit.safetensors

Prints one JSON line per model and flow time; docs: BENCHMARKS.md, "Why the demo model ignores the action in
its prompt".
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from omnihuman_core.errors import InputError  # noqa: E402
from omnihuman_core.synth.vocab import ACTION_PHRASES, spelled_action_phrases  # noqa: E402

_PHRASES = spelled_action_phrases()


def swap_action(caption: str, rng: random.Random) -> str | None:
    """The caption with its (first) action phrase replaced by a phrase of another action; None if it has none."""
    for phrase, action, pos in _PHRASES:
        if phrase in caption:
            other = rng.choice([a for a in ACTION_PHRASES if a != action])
            return caption.replace(phrase, rng.choice(ACTION_PHRASES[other]).replace("{pos}", pos), 1)
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mmdit", nargs="+", type=Path, help="MMDiT .safetensors files to compare")
    ap.add_argument("--cache", required=True, type=Path, help="latent cache the models were trained on")
    ap.add_argument("--text-encoder", required=True, type=Path, help="the models' (frozen) text encoder")
    ap.add_argument("--batches", type=int, default=4, help="batches of 16 windows (default 4)")
    ap.add_argument("--times", type=float, nargs="+", default=[0.5, 0.8], help="flow times (default 0.5 0.8)")
    args = ap.parse_args(argv)

    from omnihuman_core.model.config import MMDiTConfig
    from omnihuman_core.model.mmdit import MMDiT
    from omnihuman_core.text import load_text_encoder
    from omnihuman_core.train.data import LatentBatches, LatentCache
    from omnihuman_core.train.objective import Recipe, draw, loss_from_draws
    from omnihuman_core.train.stages import check_stage
    from omnihuman_core.weights import load_safetensors, read_metadata

    missing = [str(p) for p in args.mmdit if not p.is_file()]
    if missing:
        raise InputError(f"no such MMDiT file(s): {', '.join(missing)}")
    if any(not 0 < t < 1 for t in args.times):
        raise InputError(f"--times must lie in (0, 1), got {args.times}")
    cache = LatentCache.load(args.cache)
    batches = LatentBatches(cache, 16, 0)
    text = load_text_encoder(args.text_encoder).eval()
    rng = random.Random(0)
    # Swapped captions are drawn once, so every model sees the same ones.
    data = []
    for step in range(args.batches):
        b = batches.batch(step)
        swapped = [swap_action(c, rng) for c in b["captions"]]
        keep = [i for i, s in enumerate(swapped) if s is not None]
        if not keep:
            continue
        b = {k: (v[keep] if isinstance(v, torch.Tensor) else [v[i] for i in keep]) for k, v in b.items()}
        data.append((step, b, [swapped[i] for i in keep]))
    if not data:
        raise InputError(f"no caption in {args.cache} names an action of the synthetic vocabulary")

    for path in args.mmdit:
        state, cfg = load_safetensors(path, "mmdit")
        model = MMDiT(MMDiTConfig.from_dict(cfg))
        model.load_state_dict({k: v.float() for k, v in state.items()})
        model.eval()
        recipe = dataclasses.replace(Recipe.from_dict(json.loads(read_metadata(path)["recipe"])),
                                     face_weight=1.0, mouth_weight=1.0, motion_weight=1.0)
        # The stage it was trained in: a base model never saw audio tokens, so it is scored without them.
        stage = read_metadata(path).get("stage", "stage2")
        check_stage(stage)
        for t in args.times:
            sums = {"own": 0.0, "action_swapped": 0.0, "other_caption": 0.0, "null": 0.0}
            for step, b, swapped in data:
                n = len(swapped)
                d = draw(b, recipe, torch.Generator().manual_seed(step))
                d = dataclasses.replace(d, pin_first=torch.zeros(n, dtype=torch.bool),
                                        extra_frame=torch.ones(n, dtype=torch.bool),
                                        drop_text=torch.zeros(n, dtype=torch.bool),
                                        drop_audio=torch.zeros(n, dtype=torch.bool), timestep=torch.full((n,), t))
                captions = {"own": b["captions"], "action_swapped": swapped,
                            "other_caption": b["captions"][1:] + b["captions"][:1], "null": [""] * n}
                with torch.no_grad():
                    for key, caps in captions.items():
                        loss, _ = loss_from_draws(model, text, {**b, "captions": caps}, recipe, stage, d)
                        sums[key] += float(loss) / len(data)
            print(json.dumps({"mmdit": str(path), "t": t, "loss": {k: round(v, 5) for k, v in sums.items()},
                              "action_swapped_minus_own": round(sums["action_swapped"] - sums["own"], 5),
                              "other_caption_minus_own": round(sums["other_caption"] - sums["own"], 5),
                              "null_minus_own": round(sums["null"] - sums["own"], 5)}), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
