"""Diagnostic: can the MMDiT learn the actions at all when the action reaches it as a token of its own?

The demo model performs the prompted action about as often as chance, and `caption_sensitivity.py` finds its
loss barely uses the caption's action words. Two places can hold the actions down: the text features (the
action word is one of ~30 words, in features a masked-word-pretrained encoder was never asked to separate by
action) or the MMDiT itself (learning to make the motion from any condition, within the budget). This script
takes the text encoder out of the question: every prompt that names an action gets one extra text token, a fixed
random vector per action (the first action `parse_prompt` reads, as the evaluator does), scaled to the norm of the prompt's own tokens;
the caption's tokens stay as they were. Trained from the same base file for the same steps as a control
without the token, a large gain says the lever is the text features; none says it is the MMDiT's training.

    # `train mmdit` with the action token (any train-mmdit arguments)
    .venv/bin/python scripts/action_token.py train --stage base --init runs/demo/base/mmdit.safetensors ...
    # `evaluate run` with the same token on every schedule prompt (any evaluate-run arguments)
    .venv/bin/python scripts/action_token.py evaluate --data data/synth --split test --clips 16 ...

Null prompts (text dropout, the unconditional half of guidance) get no token, as they get no words.
Docs: BENCHMARKS.md, "Why the demo model ignores the action in its prompt".
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from omnihuman_core.synth.vocab import ACTIONS, parse_prompt  # noqa: E402
from omnihuman_core.text.base import is_null_prompt  # noqa: E402


def prompt_action(prompt: str) -> str | None:
    """The first action `parse_prompt` reads in the prompt (idle when it names none, as the evaluator scores
    it), None for a null prompt."""
    if is_null_prompt(prompt):
        return None
    actions = parse_prompt(prompt).actions
    return actions[0] if actions else None


def action_vector(action: str, dim: int) -> torch.Tensor:
    """A fixed unit vector per action (seeded by its name, so training and evaluation agree)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; the world's actions are {', '.join(ACTIONS)}")
    seed = int(hashlib.sha256(f"action-token:{action}".encode()).hexdigest()[:8], 16)
    v = torch.randn(dim, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


def with_action_token(prompts: list[str], features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Append one token per prompt: its action's vector at the mean norm of the prompt's real tokens (masked
    out, all zeros, for a null prompt)."""
    B, L, D = features.shape
    extra = torch.zeros(B, 1, D, dtype=features.dtype, device=features.device)
    extra_mask = torch.zeros(B, 1, dtype=mask.dtype, device=mask.device)
    for i, prompt in enumerate(prompts):
        action = prompt_action(prompt)
        real = mask[i].bool()
        if action is None or not real.any():
            continue
        scale = features[i][real].detach().float().norm(dim=-1).mean()
        extra[i, 0] = (action_vector(action, D) * scale).to(features.device, features.dtype)
        extra_mask[i, 0] = True
    return torch.cat([features, extra], dim=1), torch.cat([mask, extra_mask], dim=1)


def install() -> None:
    """Wrap every text encoder's `encode` (the trainer's frozen encoder and the renderer's) with the token."""
    from omnihuman_core.text.base import TextEncoder

    for cls in TextEncoder.__subclasses__():
        plain = cls.encode
        if getattr(plain, "_action_token", False):
            continue

        def encode(self, prompts, device=None, dtype=None, _plain=plain):
            prompts = list(prompts)
            features, mask = _plain(self, prompts, device=device, dtype=dtype)
            return with_action_token(prompts, features, mask)

        encode._action_token = True
        cls.encode = encode


def main() -> None:
    usage = "usage: action_token.py {train,evaluate} ARGS...   (ARGS: those of `train mmdit` / `evaluate run`)"
    if len(sys.argv) < 2 or sys.argv[1] not in ("train", "evaluate"):
        print(usage, file=sys.stderr)
        sys.exit(2)
    from omnihuman_core.cli import main as cli_main
    import omnihuman_core.text.builtin  # noqa: F401  (the encoder classes must exist before they are wrapped)

    install()
    command = ["train", "mmdit"] if sys.argv[1] == "train" else ["evaluate", "run"]
    sys.exit(cli_main([*command, *sys.argv[2:]]))


if __name__ == "__main__":
    main()
