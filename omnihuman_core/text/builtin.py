"""A small transformer text encoder with its own tokenizer: nothing to download, any language.

Two tokenizers, both without a vocabulary file: `words` (the default) hashes each lower-cased word and
punctuation mark into one of `vocab_buckets` ids (the hashing trick), so a caption is ~30 tokens and a
word's meaning is one embedding to learn; `bytes` takes the UTF-8 bytes (~5x more tokens, and word
meaning must be assembled from letters, which a small model trained for minutes does poorly).
Meant for the demo model and tests: pretrained on a dataset's captions by masked-word prediction
(train/text.py) and then frozen, or, without a pretrained file, trained jointly with the MMDiT. Deterministic: a fixed-seed init and
no dropout by default, and padding-masked attention so a prompt's features do not depend on what
else is in the batch.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
import zlib
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..errors import InputError
from .base import TextEncoder, check_prompts, is_null_prompt

# Byte tokenizer ids: 0..255 are the bytes themselves, then three specials.
PAD_ID, BOS_ID, EOS_ID = 256, 257, 258
VOCAB_SIZE = 259
# Word tokenizer ids: three specials, then the hash buckets.
WORD_PAD_ID, WORD_BOS_ID, WORD_EOS_ID = 0, 1, 2
WORD_SPECIALS = 3
TOKENIZERS = ("words", "bytes")
# A word is a run of letters / digits (apostrophes and hyphens inside it kept: "it's", "two-tone"); every
# other non-space character
# is a token of its own (punctuation; CJK scripts, written without spaces, fall back to one per character).
_WORD = re.compile(r"[^\W_]+(?:['-][^\W_]+)*|[^\w\s]|_", re.UNICODE)
_NO_SPACE_SCRIPTS = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")


@dataclass
class BuiltinTextConfig(ModelConfig):
    """Shape of the built-in text encoder. The `demo` preset is the demo model."""

    LABEL: ClassVar[str] = "built-in text encoder"

    dim: int = 256
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    # "words" (hashed words and punctuation) or "bytes" (UTF-8 bytes); see the module docstring. Every
    # preset sets "words"; the "bytes" default is what files written before this option use.
    tokenizer: str = "bytes"
    # Hash buckets of the word tokenizer (its vocabulary size less the specials); unused with "bytes".
    vocab_buckets: int = 4096
    # Tokens per prompt including BOS and EOS; also the number of learned positions (the presets: 96 words;
    # 256 is the bytes default of files written before the word tokenizer).
    max_length: int = 256
    # 0 keeps training deterministic for a given seed; raise it for larger caption sets.
    dropout: float = 0.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        problems = []
        for name in ("dim", "depth", "heads"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.heads >= 1 and self.dim % self.heads:
            problems.append(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.tokenizer not in TOKENIZERS:
            problems.append(f"tokenizer must be one of {TOKENIZERS}, got {self.tokenizer!r}")
        if isinstance(self.vocab_buckets, bool) or not isinstance(self.vocab_buckets, int) or self.vocab_buckets < 1:
            problems.append(f"vocab_buckets must be an integer >= 1, got {self.vocab_buckets!r}")
        if self.max_length < 3:
            problems.append(f"max_length must be >= 3 (BOS, one byte, EOS), got {self.max_length}")
        if self.mlp_ratio <= 0 or not 0 <= self.dropout < 1:
            problems.append(f"mlp_ratio must be > 0 and dropout in [0, 1), got {self.mlp_ratio} / {self.dropout}")
        if problems:
            raise InputError("invalid BuiltinTextConfig: " + "; ".join(problems))

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE if self.tokenizer == "bytes" else WORD_SPECIALS + self.vocab_buckets

    def make_tokenizer(self):
        return ByteTokenizer(self.max_length) if self.tokenizer == "bytes" else WordTokenizer(self.max_length,
                                                                                                 self.vocab_buckets)





# Presets hold only what differs from the dataclass defaults (= demo, ~1.7 M parameters, feeding an
# MMDiT with text_dim 256).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(dim=32, depth=2, heads=2, tokenizer="words", vocab_buckets=512, max_length=64),  # tests
    "demo": dict(tokenizer="words", max_length=96),
}


class ByteTokenizer:
    """UTF-8 bytes as tokens: `[BOS] bytes [EOS]`, padded with PAD. No vocabulary file, no download."""

    def __init__(self, max_length: int = 256):
        self.max_length = max_length

    def tokenize(self, prompt: str) -> list[int]:
        """Token ids of one prompt; the null text gives an empty list.

        Text is NFC-normalised and stripped so visually equal prompts give equal ids. Too long
        prompts keep their first `max_length - 2` bytes, cut back to a whole character so no
        broken UTF-8 sequence is ever fed to the model.
        """
        if is_null_prompt(prompt):
            return []
        data = unicodedata.normalize("NFC", prompt.strip()).encode("utf-8")
        room = self.max_length - 2
        if len(data) > room:
            cut = room
            # 0b10xxxxxx bytes continue a character; back up to the start of the one we would split.
            while cut > 0 and (data[cut] & 0xC0) == 0x80:
                cut -= 1
            data = data[:cut]
        return [BOS_ID, *data, EOS_ID]

    def __call__(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch -> (ids `[B, L]` long, mask `[B, L]` bool), padded to the longest prompt (L >= 1)."""
        return _pad_batch([self.tokenize(p) for p in check_prompts(prompts)], PAD_ID)

    def decode(self, ids: Sequence[int]) -> str:
        """Ids back to text (specials dropped); for debugging and caption objectives."""
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


def _pad_batch(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = True
    return ids, mask


class WordTokenizer:
    """Hashed words: `[BOS] word ids [EOS]`, padded with PAD. No vocabulary file, no download.

    NFKC-normalised and lower-cased; each word / punctuation mark gets `3 + crc32(word) % buckets`
    (crc32: stable across processes and Python versions, unlike `hash`). Collisions merge two words into
    one embedding; with 4096 buckets the demo world's ~600 words share few. Prompts longer than
    `max_length - 2` words keep their first words.
    """

    def __init__(self, max_length: int = 96, buckets: int = 4096):
        self.max_length, self.buckets = int(max_length), int(buckets)

    def words(self, prompt: str) -> list[str]:
        text = unicodedata.normalize("NFKC", prompt.strip()).lower()
        out = []
        for w in _WORD.findall(text):
            out.extend(list(w) if _NO_SPACE_SCRIPTS.search(w) else [w])
        return out

    def word_id(self, word: str) -> int:
        return WORD_SPECIALS + zlib.crc32(word.encode("utf-8")) % self.buckets

    def tokenize(self, prompt: str) -> list[int]:
        """Token ids of one prompt; the null text gives an empty list."""
        if is_null_prompt(prompt):
            return []
        ids = [self.word_id(w) for w in self.words(prompt)][: self.max_length - 2]
        return [WORD_BOS_ID, *ids, WORD_EOS_ID]

    def __call__(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch -> (ids `[B, L]` long, mask `[B, L]` bool), padded to the longest prompt (L >= 1)."""
        return _pad_batch([self.tokenize(p) for p in check_prompts(prompts)], WORD_PAD_ID)


class _Block(nn.Module):
    """Pre-norm bidirectional transformer block."""

    def __init__(self, cfg: BuiltinTextConfig, device=None, dtype=None):
        super().__init__()
        fk = dict(device=device, dtype=dtype)
        self.heads = cfg.heads
        self.dropout = cfg.dropout
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps, **fk)
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim, **fk)
        self.out = nn.Linear(cfg.dim, cfg.dim, **fk)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps, **fk)
        hidden = int(cfg.dim * cfg.mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.dim, hidden, **fk), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(hidden, cfg.dim, **fk)
        )

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.out(a.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class BuiltinTextEncoder(TextEncoder):
    """Small transformer text encoder: `dim`-wide features per word (or byte) token, learned positions."""

    kind = "text_encoder"  # weights-file kind (omnihuman_core.weights)

    def __init__(self, config: BuiltinTextConfig | None = None, device=None, dtype=None, seed: int = 0):
        super().__init__()
        self.config = cfg = config or BuiltinTextConfig.preset("demo")
        self.dim = cfg.dim
        self.tokenizer = cfg.make_tokenizer()
        # Built on the meta device, then given storage and initialised once by _init_weights: the
        # default per-layer init would be wasted work and would consume the global RNG.
        fk = dict(device="meta", dtype=dtype)
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.dim, **fk)
        self.position_embedding = nn.Embedding(cfg.max_length, cfg.dim, **fk)
        self.blocks = nn.ModuleList(_Block(cfg, **fk) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps, **fk)
        target = torch.empty(0, device=device).device
        if target.type != "meta":
            self.to_empty(device=target)
            self._init_weights(seed)

    @classmethod
    def from_config(
        cls, config: BuiltinTextConfig | Mapping[str, Any] | str, device=None, dtype=None, seed: int = 0
    ) -> "BuiltinTextEncoder":
        """Build from a config, its `to_dict()` form (e.g. a weights file's metadata) or a preset name."""
        if isinstance(config, str):
            config = BuiltinTextConfig.preset(config)
        elif not isinstance(config, BuiltinTextConfig):
            config = BuiltinTextConfig.from_dict(config)
        return cls(config, device=device, dtype=dtype, seed=seed)

    def _init_weights(self, seed: int) -> None:
        """GPT-style N(0, 0.02) init from a private generator: reproducible, and the global RNG is untouched."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    module.weight.copy_(torch.randn(module.weight.shape, generator=g) * 0.02)
                    if getattr(module, "bias", None) is not None:
                        module.bias.zero_()
                elif isinstance(module, nn.LayerNorm):
                    module.weight.fill_(1.0)
                    module.bias.zero_()

    @property
    def device(self) -> torch.device:
        return self.token_embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.token_embedding.weight.dtype

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token ids `[B, L]` + mask `[B, L]` -> features `[B, L, dim]` (padding not yet zeroed)."""
        if ids.shape[1] > self.config.max_length:
            raise InputError(f"{ids.shape[1]} tokens exceed this encoder's max_length {self.config.max_length}")
        ids, mask = ids.to(self.device), mask.to(self.device, torch.bool)
        positions = torch.arange(ids.shape[1], device=self.device)
        x = self.token_embedding(ids) + self.position_embedding(positions)[None]
        # Keys are the real tokens only. A null-text row has none; let it attend everywhere (its
        # output is zeroed anyway) rather than feed softmax an all -inf row (NaN).
        keys = mask | ~mask.any(dim=1, keepdim=True)
        attn_mask = keys[:, None, None, :]
        for block in self.blocks:
            x = block(x, attn_mask)
        return self.norm_out(x)

    def encode(self, prompts, device=None, dtype=None):
        """Prompts -> (features `[B, L, dim]`, mask `[B, L]`); grads follow the caller's grad mode."""
        ids, mask = self.tokenizer(prompts)
        mask = mask.to(self.device)
        return self._finish(self(ids, mask), mask, device, dtype)
