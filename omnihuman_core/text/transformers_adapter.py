"""Text encoders from a local Hugging Face `transformers` folder (umT5 / T5, BERT, CLIP text, ...).

Only local folders: `local_files_only=True` everywhere, so nothing is ever fetched from a hub, and
only safetensors weights, so nothing is unpickled. `transformers` is imported when an encoder is
built, keeping `import omnihuman_core.text` cheap.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from ..errors import InputError, WeightsError
from .base import TextEncoder, check_prompts, is_null_prompt

# Any one of these is enough for AutoTokenizer (fast tokenizer, sentencepiece, WordPiece, BPE).
TOKENIZER_FILES = (
    "tokenizer.json",
    "spiece.model",
    "tokenizer.model",
    "sentencepiece.bpe.model",
    "vocab.txt",
    "vocab.json",
)
# Encoder-decoder families whose encoder has its own class (loads only the encoder weights).
_T5_ENCODERS = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}
# Lengths above this are tokenizer "no limit" sentinels (int(1e30)), not real limits.
_NO_LIMIT = 1_000_000


def _dtype_kwarg() -> str:
    """`from_pretrained` calls the dtype argument `dtype` since transformers 4.56, `torch_dtype` before."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def check_model_folder(folder: str | os.PathLike) -> Path:
    """Raise InputError unless `folder` holds a config, tokenizer files and safetensors weights."""
    path = Path(folder).expanduser()
    copy_hint = (
        "copy the whole model folder (config.json, tokenizer files and *.safetensors) from the model's "
        "source, e.g. its Hugging Face repository, into one local folder"
    )
    if not path.exists():
        raise InputError(f"text encoder folder {path} does not exist; {copy_hint}")
    if not path.is_dir():
        raise InputError(f"text encoder path {path} is a file; pass the model folder that contains it")
    if not (path / "config.json").is_file():
        raise InputError(f"text encoder folder {path} has no config.json; {copy_hint}")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise InputError(
            f"text encoder folder {path} has no tokenizer files (tokenizer.json or spiece.model); {copy_hint}"
        )
    if not any(path.glob("*.safetensors")):
        pickles = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt"))
        if pickles:
            raise InputError(
                f"text encoder folder {path} has only pickle weights ({', '.join(pickles[:3])}); this pack never "
                "unpickles files (they can run code). Download the model's .safetensors files instead, or "
                "convert once in a trusted environment with "
                "`AutoModel.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)`."
            )
        raise InputError(f"text encoder folder {path} has no *.safetensors weights; {copy_hint}")
    return path


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' load report and progress bar for one load (restored afterwards).

    The report lists every key a partial load skips (a T5 decoder, a CLIP vision tower): hundreds of
    lines that are expected here; what matters is checked by `_check_loading_info` instead.
    """
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def _check_loading_info(path: Path, model_name: str, info: dict) -> None:
    """Raise WeightsError when weights the features depend on were missing or misshapen in the folder.

    Extra keys are fine (other heads, towers, decoders). Missing pooler weights are fine too: the
    pooler never feeds the hidden states used here.
    """
    missing = [k for k in info.get("missing_keys", []) if not k.split(".")[0] == "pooler"]
    mismatched = [str(k[0]) if isinstance(k, (tuple, list)) else str(k) for k in info.get("mismatched_keys", [])]
    if missing or mismatched:
        names = sorted(missing) + sorted(mismatched)
        raise WeightsError(
            f"text encoder folder {path}: its weights do not fit {model_name} "
            f"({len(missing)} missing, {len(mismatched)} mismatched, e.g. {', '.join(names[:5])}); "
            "the folder's config.json and *.safetensors probably come from different models"
        )


class TransformersTextEncoder(TextEncoder):
    """A frozen `transformers` encoder loaded from a local folder; features = a chosen hidden state.

    T5-family folders load only the encoder (T5EncoderModel & co.), CLIP folders only the text tower,
    everything else AutoModel (the encoder half of encoder-decoder models). `hidden_layer=None` gives
    `last_hidden_state`; an int indexes `hidden_states` (0 = embeddings, -1 = last layer, before any
    final norm the model applies to `last_hidden_state`, -2 = the penultimate layer CLIP users like).
    T5-family encoders overflow in fp16: load them in bf16 or fp32.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        max_length: int = 512,
        hidden_layer: int | None = None,
    ):
        super().__init__()
        path = check_model_folder(folder)
        if max_length < 1:
            raise InputError(f"max_length must be >= 1, got {max_length}")
        import transformers
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        self.folder = path
        self.hidden_layer = hidden_layer
        try:
            config = AutoConfig.from_pretrained(str(path), local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"text encoder folder {path} could not be read by transformers: {e}") from e

        model_type = getattr(config, "model_type", "")
        if model_type in _T5_ENCODERS:
            model_class = getattr(transformers, _T5_ENCODERS[model_type])
        elif model_type == "clip":
            model_class = transformers.CLIPTextModel  # the text tower of a full CLIP folder
        else:
            model_class = AutoModel
        load_kw = dict(local_files_only=True, use_safetensors=True, output_loading_info=True)
        if dtype is not None:
            load_kw[_dtype_kwarg()] = dtype
        with _quiet_transformers():
            model, info = model_class.from_pretrained(str(path), **load_kw)
        _check_loading_info(path, type(model).__name__, info)
        if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
            model = model.get_encoder()
        self.model = model.to(device=device).eval().requires_grad_(False)

        cfg = self.model.config
        self.dim = int(getattr(cfg, "d_model", None) or cfg.hidden_size)
        # Never ask for more tokens than the tokenizer or the position table can take (CLIP: 77).
        limits = [
            max_length,
            getattr(self.tokenizer, "model_max_length", None),
            getattr(cfg, "max_position_embeddings", None),
        ]
        self.max_length = int(min(x for x in limits if isinstance(x, int) and 0 < x < _NO_LIMIT))
        if self.tokenizer.pad_token is None:
            # Decoder-style tokenizers (GPT-2 & co.) have no pad token; padding is masked out anyway.
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def encode(self, prompts, device=None, dtype=None):
        """Prompts -> (features `[B, L, dim]`, mask `[B, L]`); always without gradients (frozen encoder)."""
        prompts = check_prompts(prompts)
        null = torch.tensor([is_null_prompt(p) for p in prompts])
        if bool(null.all()):
            # Nothing to run: the null text is all-False mask by definition.
            feats = torch.zeros(len(prompts), 1, self.dim, device=self.device, dtype=self.dtype)
            mask = torch.zeros(len(prompts), 1, dtype=torch.bool, device=self.device)
            return self._finish(feats, mask, device, dtype)
        tok = self.tokenizer(
            [p.strip() for p in prompts],
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        ids = tok["input_ids"].to(self.device)
        mask = tok["attention_mask"].to(self.device).bool() & ~null.to(self.device)[:, None]
        with torch.no_grad():
            out = self.model(
                input_ids=ids,
                attention_mask=tok["attention_mask"].to(self.device),
                output_hidden_states=self.hidden_layer is not None,
                return_dict=True,
            )
        feats = out.last_hidden_state if self.hidden_layer is None else out.hidden_states[self.hidden_layer]
        return self._finish(feats, mask, device, dtype)
