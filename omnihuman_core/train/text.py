"""Pretraining the built-in text encoder on a dataset's captions by masked-word prediction (BERT-style).

Why: the paper conditions System 1 on a pretrained, frozen text encoder. Trained only jointly with the
MMDiT (the base stage), the built-in encoder collapsed: the shipped demo file gave captions that differ
in their action phrase mean-pooled features at cosine 0.99-1.00, and its tokens deviated from the mean
token by 2.2 of a norm of 16 against 10.2 for a random init, so the MMDiT saw nearly the same text for
every prompt. Masked-word prediction makes every token's feature say which word it is in its context, a
small-scale stand-in for the pretrained encoder; afterwards it is frozen in every MMDiT stage.

Objective (`mlm_loss`): per caption ~15 % of the real word tokens (at least one; never BOS / EOS / PAD)
are selected; 80 % of those are replaced by a token drawn from the batch's own real tokens (the vocabulary
has no mask id, and adding one would change the embedding shape, so old files keep loading), 20 % kept;
the original ids are predicted at the selected positions with logits tied to the token embedding.
`text_feature_spread` measures how distinct the features are, over the dataset and within each clip's own
captions (`within_group_spread`: same character, other actions); the export records both.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from . import distributed as D
from .loop import TrainConfig, Trainer, TrainResult

# Clips whose own captions (caption.txt and shot prompts) are compared with each other in the export's check.
EVAL_CLIPS = 64


@dataclass
class TextSettings:
    """What a text-encoder pretraining run trains on and with (its identity in the checkpoint)."""

    preset: str = "demo"
    split: str = "train"
    mask_fraction: float = 0.15  # share of a caption's real tokens that are predicted (at least one)
    replace_fraction: float = 0.8  # share of those replaced by a random token of the batch; the rest kept
    eval_captions: int = 512  # captions (a fixed subset) for the exported accuracy and spread

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.mask_fraction <= 1:
            problems.append(f"mask_fraction must be in (0, 1], got {self.mask_fraction}")
        if not 0 <= self.replace_fraction <= 1:
            problems.append(f"replace_fraction must be in [0, 1], got {self.replace_fraction}")
        if self.eval_captions < 2:
            problems.append(f"eval_captions must be >= 2, got {self.eval_captions}")
        if problems:
            raise InputError("text pretraining settings: " + "; ".join(problems))


def dataset_captions(data_dir, split: str = "train", log: Callable[[str], None] | None = None) -> list[str]:
    """Every distinct caption of `split`: each clip's caption.txt and its schedule's shot prompts, in order."""
    return _scan_captions(data_dir, split, log)[0]


def _scan_captions(data_dir, split, log) -> tuple[list[str], list[list[str]]]:
    """(distinct captions, per clip its distinct captions when it has several)."""
    from .data import scan_dataset

    # scan_dataset names the folder when no clip has a caption.txt.
    clips = scan_dataset(data_dir, split, need_audio=False, need_caption=True, log=log)
    groups = []
    for clip in clips:
        texts = [clip.caption] + ([shot.text() for shot in clip.schedule.shots] if clip.schedule is not None else [])
        groups.append([t for t in dict.fromkeys(t.strip() for t in texts) if t])
    captions = list(dict.fromkeys(t for g in groups for t in g))
    if not captions:
        raise InputError(f"no captions in {Path(data_dir)} (split {split!r}): every clip's caption.txt is empty")
    return captions, [g for g in groups if len(g) > 1]


def special_ids(encoder) -> tuple[int, ...]:
    """PAD, BOS and EOS of the encoder's tokenizer: never selected, never used as replacements."""
    from ..text.builtin import BOS_ID, EOS_ID, PAD_ID, WORD_BOS_ID, WORD_EOS_ID, WORD_PAD_ID

    if encoder.config.tokenizer == "bytes":
        return PAD_ID, BOS_ID, EOS_ID
    return WORD_PAD_ID, WORD_BOS_ID, WORD_EOS_ID


def real_tokens(ids: torch.Tensor, mask: torch.Tensor, specials: Sequence[int]) -> torch.Tensor:
    """True at a caption's word tokens (not padding, not BOS / EOS)."""
    return mask & ~torch.isin(ids, torch.tensor(list(specials), dtype=ids.dtype, device=ids.device))


def mask_words(ids: torch.Tensor, mask: torch.Tensor, specials: Sequence[int], generator: torch.Generator, *,
               mask_fraction: float = 0.15, replace_fraction: float = 0.8) -> tuple[torch.Tensor, torch.Tensor]:
    """(corrupted ids, selected `[B, L]` bool) for token ids `[B, L]` on the CPU; see the module docstring.

    Draws the same amount from `generator` whatever the captions, so a step's draws depend only on its seed.
    """
    real = real_tokens(ids, mask, specials)
    b, n = ids.shape
    # Exactly round(fraction x words) per caption (at least one) rather than a coin per word, so short
    # captions are never left without a target.
    count = torch.where(real.any(1), (real.sum(1).float() * mask_fraction).round().clamp(min=1), 0).long()
    score = torch.rand((b, n), generator=generator).masked_fill(~real, 2.0)
    rank = score.argsort(dim=1).argsort(dim=1)
    selected = (rank < count[:, None]) & real
    replace = selected & (torch.rand((b, n), generator=generator) < replace_fraction)
    pool = ids[real]
    pick = torch.randint(max(len(pool), 1), (b, n), generator=generator)
    if len(pool) == 0:
        return ids.clone(), selected
    return torch.where(replace, pool[pick], ids), selected


def _logits(encoder, features: torch.Tensor) -> torch.Tensor:
    # Tied to the input embedding: no new weights, so the exported file is an ordinary text encoder.
    return (features @ encoder.token_embedding.weight.to(features.dtype).T).float()


def mlm_loss(encoder, batch: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator, *,
             mask_fraction: float = 0.15, replace_fraction: float = 0.8) -> tuple[torch.Tensor, dict[str, float]]:
    """(cross-entropy at the selected positions, stats) for a batch of token ids and masks (CPU tensors)."""
    ids, mask = batch
    inputs, selected = mask_words(ids, mask, special_ids(encoder), generator, mask_fraction=mask_fraction,
                                  replace_fraction=replace_fraction)
    device = encoder.device
    features = encoder(inputs.to(device), mask.to(device))
    sel = selected.to(device)
    logits = _logits(encoder, features[sel])
    target = ids.to(device)[sel]
    loss = F.cross_entropy(logits, target)
    accuracy = (logits.argmax(-1) == target).float().mean()
    return loss, {"loss": float(loss.detach()), "accuracy": float(accuracy), "targets": float(sel.sum())}


class CaptionBatches:
    """Padded (ids, mask) batches of tokenised captions; `batch(step)` is a pure function of (seed, step, rank).

    The captions are read as one stream of seeded permutations (one per epoch), so any batch size works,
    even one larger than the caption set, and every epoch shows each caption once.
    """

    def __init__(self, token_rows: Sequence[Sequence[int]], batch_size: int, pad_id: int, seed: int = 0,
                 rank: int = 0, world: int = 1):
        if not token_rows:
            raise InputError("no captions to train on")
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {batch_size}")
        self.rows = [list(r) for r in token_rows]
        self.batch_size, self.pad_id, self.seed = int(batch_size), int(pad_id), int(seed)
        self.rank, self.world = int(rank), int(world)
        self._order: tuple[int, np.ndarray] | None = None

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch, 0x7E7]).permutation(len(self.rows)))
        return self._order[1]

    def indices(self, step: int) -> list[int]:
        start = (int(step) * self.world + self.rank) * self.batch_size
        out = []
        for pos in range(start, start + self.batch_size):
            epoch, k = divmod(pos, len(self.rows))
            out.append(int(self._permutation(epoch)[k]))
        return out

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.rows[i] for i in self.indices(step)]
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = True
        return ids, mask


@torch.no_grad()
def text_feature_spread(encoder, captions: Sequence[str], batch_size: int = 256) -> dict[str, float]:
    """How distinct an encoder's features are over `captions` (at least 2); ~0 means collapsed.

    token_deviation: mean distance of a token's feature from the mean token, over the mean token norm;
    pooled_spread: the same for the mean-pooled caption features; pooled_cosine: their mean pairwise cosine.
    """
    captions = list(captions)
    if len(captions) < 2:
        raise InputError(f"text_feature_spread needs at least 2 captions, got {len(captions)}")
    was_training = encoder.training
    encoder.eval()
    tokens, pooled = [], []
    for i in range(0, len(captions), batch_size):
        features, mask = encoder.encode(captions[i:i + batch_size])
        features = features.float()
        tokens.append(features[mask])
        pooled.append((features * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1))
    encoder.train(was_training)
    x, p = torch.cat(tokens), torch.cat(pooled)
    unit = F.normalize(p, dim=-1)
    cos = unit @ unit.T
    n = len(p)
    return {
        "token_deviation": round(float((x - x.mean(0)).norm(dim=-1).mean() / x.norm(dim=-1).mean()), 4),
        "pooled_spread": round(float((p - p.mean(0)).norm(dim=-1).mean() / p.norm(dim=-1).mean()), 4),
        "pooled_cosine": round(float((cos.sum() - cos.diagonal().sum()) / (n * (n - 1))), 4),
    }


def within_group_spread(encoder, groups: Sequence[Sequence[str]]) -> dict[str, float] | None:
    """`text_feature_spread` within each group of captions, averaged. With one clip's captions as a group (the
    same character, other actions and expressions) it measures what a prompt's action changes, which the
    spread over a whole dataset (dominated by the characters' descriptions) hides; None without groups."""
    spreads = [text_feature_spread(encoder, g) for g in groups if len(g) > 1]
    if not spreads:
        return None
    return {k: round(float(np.mean([s[k] for s in spreads])), 4) for k in spreads[0]}


@torch.no_grad()
def masked_word_accuracy(encoder, captions: Sequence[str], seed: int = 0, *, mask_fraction: float = 0.15,
                         replace_fraction: float = 0.8, batch_size: int = 256) -> dict[str, float]:
    """Share of selected words predicted right (all, and the replaced ones alone), under a fixed draw,
    and `chance`: the share a model guessing the most frequent selected word would get."""
    was_training = encoder.training
    encoder.eval()
    generator = torch.Generator().manual_seed(int(seed))
    specials = special_ids(encoder)
    hits = replaced_hits = replaced_total = 0
    targets_all = []
    captions = list(captions)
    for i in range(0, len(captions), batch_size):
        ids, mask = encoder.tokenizer(captions[i:i + batch_size])
        inputs, selected = mask_words(ids, mask, specials, generator, mask_fraction=mask_fraction,
                                      replace_fraction=replace_fraction)
        features = encoder(inputs, mask)
        sel = selected.to(features.device)
        guess = _logits(encoder, features[sel]).argmax(-1).cpu()
        target = ids[selected]
        replaced = (inputs != ids)[selected]
        hits += int((guess == target).sum())
        replaced_hits += int((guess == target)[replaced].sum())
        replaced_total += int(replaced.sum())
        targets_all.append(target)
    encoder.train(was_training)
    targets = torch.cat(targets_all)
    total = max(len(targets), 1)
    chance = float(torch.bincount(targets).max()) / total if len(targets) else 0.0
    return {"accuracy": round(hits / total, 4), "replaced_accuracy": round(replaced_hits / max(replaced_total, 1), 4),
            "chance": round(chance, 4), "targets": int(len(targets))}


def _eval_subset(items: Sequence, n: int, seed: int) -> list:
    if len(items) <= n:
        return list(items)
    order = np.random.default_rng([int(seed), 0xE7A]).permutation(len(items))[:n]
    return [items[i] for i in sorted(order)]


def _captions_fingerprint(captions: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(captions).encode("utf-8")).hexdigest()[:16]


def train_text_encoder(
    data_dir,
    out_path,
    work_dir,
    settings: TextSettings | None = None,
    config: TrainConfig | None = None,
    *,
    init=None,
    max_minutes: float | None = None,
    device=None,
    dist: D.DistInfo | None = None,
    export_dtype: torch.dtype | None = torch.float16,
    extra: dict | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[TrainResult, Path | None]:
    """Pretrain (resuming from `work_dir`) the built-in text encoder on the dataset's captions and write
    `out_path` (kind "text_encoder"); `init` continues from an encoder file instead of a fresh init.

    Returns the run's result and the written file (None while the run is only paused / interrupted).
    """
    from ..text import BuiltinTextEncoder, load_text_encoder
    from ..weights import file_fingerprint

    settings = settings or TextSettings()
    config = config or TrainConfig(lr=1e-3, warmup=50, minutes=3.0, batch_size=64, weight_decay=0.01,
                                   ema_decay=0.995)
    dist = dist or D.DistInfo(device=torch.device(device or "cpu"))
    say = log if log is not None else (lambda m: D.is_main_print(m, dist))
    if init is not None and not Path(init).is_file():
        raise InputError(f"--init {init} does not exist (a built-in text encoder's .safetensors file)")
    captions, groups = _scan_captions(data_dir, settings.split, say if dist.is_main else None)

    if init is not None:
        encoder = load_text_encoder(init, device=dist.device)
        if not isinstance(encoder, BuiltinTextEncoder):
            raise InputError(f"--init {init} is not a built-in text encoder file")
        encoder.train()
    else:
        encoder = BuiltinTextEncoder.from_config(settings.preset, device=dist.device, seed=config.seed)
    rows = [encoder.tokenizer.tokenize(c) for c in captions]
    batches = CaptionBatches(rows, config.batch_size, special_ids(encoder)[0], config.seed, dist.rank, dist.world)

    def loss_fn(batch, generator):
        return mlm_loss(encoder, batch, generator, mask_fraction=settings.mask_fraction,
                        replace_fraction=settings.replace_fraction)

    run_info = {"model": "text_encoder", "config": encoder.config.to_dict(), "settings": asdict(settings),
                "data": str(Path(data_dir).resolve()), "captions": [len(captions), _captions_fingerprint(captions)],
                "init": file_fingerprint(init) if init is not None else None, "world": dist.world}
    # The loss calls forward and reads the embedding directly, so no DDP wrapper: the Trainer averages
    # the gradients of unwrapped modules itself.
    trainer = Trainer({"text_encoder": encoder}, encoder.parameters(), loss_fn, batches, config, work_dir,
                      run_info=run_info, dist=dist, log=say)
    trainer.resume()
    n_params = sum(p.numel() for p in encoder.parameters())
    lengths = [len(r) for r in rows]
    say(f"text encoder {encoder.config.tokenizer} ({n_params / 1e6:.2f} M parameters): {len(captions)} captions, "
        f"{np.mean(lengths):.1f} tokens on average, batch {config.batch_size} x {dist.world}")
    result = trainer.run(max_minutes=max_minutes)
    if not result.done:
        return result, None

    ema = trainer.ema_module("text_encoder").eval()
    subset = _eval_subset(captions, settings.eval_captions, config.seed)
    clip_groups = _eval_subset(groups, EVAL_CLIPS, config.seed)
    fresh = BuiltinTextEncoder(encoder.config, device=dist.device, seed=config.seed)
    record = {"captions": len(captions),
              **masked_word_accuracy(ema, subset, config.seed + 11, mask_fraction=settings.mask_fraction,
                                     replace_fraction=settings.replace_fraction),
              "spread": text_feature_spread(ema, subset), "spread_random_init": text_feature_spread(fresh, subset),
              "spread_within_clip": within_group_spread(ema, clip_groups),
              "spread_within_clip_random_init": within_group_spread(fresh, clip_groups),
              "eval_captions": len(subset), "eval_clips": len(clip_groups), "settings": asdict(settings)}
    say(f"text encoder check on {len(subset)} captions: {json.dumps(record)}")
    path = trainer.export(out_path, "text_encoder", "text_encoder", encoder.config.to_dict(),
                          extra={"pretraining": record, "train_config": config.to_dict(), **(extra or {})},
                          dtype=export_dtype)
    if dist.is_main:
        say(f"wrote {path} ({result.step} steps, {result.minutes:.1f} min, final loss {result.final_loss})")
    return result, path
