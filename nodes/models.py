"""Model files -> managed models, and adapters that let ComfyUI's own VAE / CLIP / AUDIO_ENCODER stand in
for the pack's components. Loading only; no model math.

The pack's models are built from the layers `_comfy.operations()` picks and wrapped in `_comfy.Managed`,
so ComfyUI loads them to the GPU when a node uses them and offloads them when another model needs the
room. The proxies below call `load()` before every use, which is cheap when the model is in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from omnihuman_core.errors import InputError, WeightsError

from . import _comfy
from .types import OmniHumanModel


# ---- missing files ----------------------------------------------------------------------------------
def resolve_model_file(name: str, what: str, expected: Sequence[str]) -> Path:
    """The path of `name` in the `omnihuman` model folder, or an InputError that lists the folders and
    the file names expected there."""
    path = _comfy.find_model_file(name) if isinstance(name, str) and name.strip() else None
    if path is not None:
        return path
    folders = ", ".join(str(p) for p in _comfy.model_paths())
    found = _comfy.list_model_files()
    listing = ", ".join(found[:12]) + (f" (+{len(found) - 12} more)" if len(found) > 12 else "") if found else "none"
    raise InputError(
        f"{what} '{name}' was not found in the '{_comfy.MODEL_FOLDER}' model folder ({folders}). "
        f"Expected files there: {', '.join(expected)}. Put the pack's demo files in <pack>/models/demo/ "
        f"(or your own .safetensors files in ComfyUI/models/{_comfy.MODEL_FOLDER}/) and refresh the node. "
        f".safetensors files found: {listing}"
    )


_KIND_CACHE: dict[tuple[str, float, int], str | None] = {}


def file_kind(path: Path | None) -> str | None:
    """The `omnihuman.kind` of a weights file (None for other or unreadable files); cached by mtime and size."""
    from omnihuman_core.weights import read_metadata

    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_mtime, st.st_size)
    if key not in _KIND_CACHE:
        try:
            _KIND_CACHE[key] = read_metadata(path).get("omnihuman.kind")
        except Exception:  # not a safetensors file at all: listed nowhere
            _KIND_CACHE[key] = None
    return _KIND_CACHE[key]


def files_of_kind(kind: str, default: str) -> list[str]:
    """`.safetensors` files of the model folder that hold `kind`, with `default` first when it is missing,
    so a missing demo file gets the message above rather than ComfyUI's "value not in list"."""
    names = [name for name in _comfy.list_model_files() if file_kind(_comfy.find_model_file(name)) == kind]
    if default not in names:
        names.insert(0, default)
    return names


# ---- the pack's own models ------------------------------------------------------------------------------
class MMDiTProxy:
    """The MMDiT as the sampler calls it; loads it (or more of it) before every forward."""

    def __init__(self, managed: _comfy.Managed):
        self.managed = managed
        self.config = managed.module.config

    def __call__(self, *args, **kwargs):
        self.managed.load()
        return self.managed.module(*args, **kwargs)


class VAEProxy:
    """A VideoVAE that loads itself before encoding or decoding (the whole of it: plain torch layers)."""

    def __init__(self, managed: _comfy.Managed):
        self.managed = managed
        inner = managed.module
        self.latent_channels = int(inner.latent_channels)
        self.temporal_factor = int(inner.temporal_factor)
        self.spatial_factor = int(inner.spatial_factor)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        self.managed.load()
        with torch.no_grad():
            return self.managed.module.encode(video)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        self.managed.load()
        with torch.no_grad():
            return self.managed.module.decode(latent)

    def check_size(self, height: int, width: int) -> None:
        self.managed.module.check_size(height, width)

    def check_frames(self, frames: int) -> None:
        self.managed.module.check_frames(frames)


class TextEncoderProxy:
    """A TextEncoder that loads itself before encoding."""

    def __init__(self, managed: _comfy.Managed):
        self.managed = managed
        self.dim = int(managed.module.dim)

    def encode(self, prompts, device=None, dtype=None):
        self.managed.load()
        with torch.no_grad():
            return self.managed.module.encode(prompts, device=device, dtype=dtype)


def load_mmdit(path: Path, weight_dtype: str) -> tuple[MMDiTProxy, torch.device, torch.dtype]:
    """The MMDiT in `path`, built with ComfyUI's layers; returns (proxy, compute device, compute dtype)."""
    from omnihuman_core.model import MMDiT, MMDiTConfig
    from omnihuman_core.weights import load_into, load_safetensors

    state, config = load_safetensors(path, "mmdit")
    try:
        cfg = MMDiTConfig.from_dict(config)
    except InputError as e:
        raise WeightsError(f"{path}: {e}") from e
    if cfg.cond_channels:
        raise WeightsError(f"{path} holds a super-resolution model; load it with the OmniHuman Upscaler Loader")
    device, offload = _comfy.torch_device(), _comfy.offload_device()
    weight, compute = _comfy.model_dtypes(weight_dtype, device, sum(v.numel() for v in state.values()))
    model = MMDiT(cfg, operations=_comfy.operations(weight, compute, device), device=offload, dtype=weight)
    load_into(model, state, path)
    del state
    managed = _comfy.Managed(model, load_device=device, offload_device=offload, dtype=compute, full_load=False)
    return MMDiTProxy(managed), device, compute


def load_vae(path: Path) -> VAEProxy:
    from omnihuman_core.vae import CausalVideoVAE
    from omnihuman_core.weights import load_into, load_safetensors

    state, config = load_safetensors(path, "vae")
    device, offload, dtype = _comfy.vae_devices()
    try:
        vae = CausalVideoVAE.from_config(config, device=offload, dtype=dtype)
    except InputError as e:
        raise WeightsError(f"{path}: {e}") from e
    load_into(vae, state, path)
    del state
    return VAEProxy(_comfy.Managed(vae, load_device=device, offload_device=offload, dtype=dtype, full_load=True))


def load_text_encoder(path: Path) -> TextEncoderProxy:
    from omnihuman_core.text import load_text_encoder as core_load

    device, offload, dtype = _comfy.text_encoder_devices()
    encoder = core_load(str(path), device=offload, dtype=dtype)
    return TextEncoderProxy(_comfy.Managed(encoder, load_device=device, offload_device=offload, dtype=dtype,
                                           full_load=True))


def load_upscaler(path: Path):
    """The super-resolution model in `path`, built with ComfyUI's layers; returns (Upscaler, Managed)."""
    from omnihuman_core.upscale import Upscaler, read_upscaler
    from omnihuman_core.weights import load_into

    state, cfg = read_upscaler(path)
    device, offload = _comfy.torch_device(), _comfy.offload_device()
    weight, compute = _comfy.model_dtypes("auto", device, sum(v.numel() for v in state.values()))
    # The upscaler computes in its weights' dtype (Upscaler.velocity casts inputs to it).
    upscaler = Upscaler(cfg, operations=_comfy.operations(weight, weight, device), device=offload, dtype=weight)
    load_into(upscaler, state, path)
    del state
    # Whole: Upscaler.velocity places its inputs on the device of its first layer.
    return _comfy.Managed(upscaler, load_device=device, offload_device=offload, dtype=weight, full_load=True)


# ---- ComfyUI's own components standing in for the pack's ------------------------------------------------
def core_vae_adapter(vae):
    """A core VAE (ComfyUI `VAE`, e.g. Wan 2.1) as a VideoVAE: its raw latents, as the model was trained on."""
    from omnihuman_core.vae import VideoVAE

    class CoreVAE(VideoVAE):
        def __init__(self, core):
            super().__init__()
            self.core = core
            self.latent_channels = int(core.latent_channels)
            tf = core.temporal_compression_decode() if hasattr(core, "temporal_compression_decode") else None
            if not tf or getattr(core, "latent_dim", 3) != 3:
                raise InputError("the VAE connected to the OmniHuman model loader is an image VAE; connect a "
                                 "video VAE (e.g. Wan 2.1) or leave the input empty to use the vae_name file")
            self.temporal_factor = int(tf)
            self.spatial_factor = int(core.spacial_compression_encode())

        def encode(self, video: torch.Tensor) -> torch.Tensor:
            self.check_video(video)
            out = []
            for clip in video:  # [3, T, H, W] -1..1 -> ComfyUI frames [T, H, W, 3] 0..1
                frames = ((clip.float().clamp(-1, 1) + 1) / 2).permute(1, 2, 3, 0).to(_comfy.intermediate_device())
                out.append(self.core.encode(frames).float())
            return torch.cat(out)

        def decode(self, latent: torch.Tensor) -> torch.Tensor:
            self.check_latent(latent)
            frames = self.core.decode(latent)  # [B, T, H, W, 3] 0..1
            if frames.dim() == 4:
                frames = frames.unsqueeze(0)
            return (frames.float() * 2 - 1).permute(0, 4, 1, 2, 3).contiguous()

    return CoreVAE(vae)


def core_clip_adapter(clip, expected_dim: int):
    """A core CLIP (ComfyUI `CLIP`, e.g. umT5 for Wan) as a TextEncoder: its per-token conditioning."""
    from omnihuman_core.text import TextEncoder, is_null_prompt
    from omnihuman_core.text.base import check_prompts

    class CoreCLIP(TextEncoder):
        def __init__(self, core, dim):
            super().__init__()
            self.core = core
            self.dim = int(dim)

        def encode(self, prompts, device=None, dtype=None):
            rows = []
            for p in check_prompts(prompts):
                if is_null_prompt(p):
                    rows.append(None)
                    continue
                cond = self.core.encode_from_tokens(self.core.tokenize(p))  # [1, L, D]
                if cond.shape[-1] != self.dim:
                    raise InputError(
                        f"the CLIP connected to the OmniHuman model loader gives {cond.shape[-1]}-dim features, "
                        f"the model expects {self.dim}; connect the text encoder the model was trained with"
                    )
                rows.append(cond[0].float().cpu())
            length = max([1] + [r.shape[0] for r in rows if r is not None])
            feats = torch.zeros(len(rows), length, self.dim)
            mask = torch.zeros(len(rows), length, dtype=torch.bool)
            for i, r in enumerate(rows):
                if r is not None:
                    feats[i, : r.shape[0]] = r
                    mask[i, : r.shape[0]] = True
            return self._finish(feats, mask, device, dtype)

    return CoreCLIP(clip, expected_dim)


def core_audio_encoder_adapter(encoder):
    """A core AUDIO_ENCODER (wav2vec2 / Whisper from models/audio_encoders) on the library's 50 Hz grid.

    Encoded in 30 s windows with context (the library's chunking); wav2vec2 is centred like the pack's
    own Wav2Vec2Encoder (mean of its layers), Whisper gives its last layer, as the pack's WhisperEncoder.
    """
    from omnihuman_core.audio.encoders import SAMPLE_RATE, _ChunkedTransformerEncoder, n_features

    WAV2VEC_PAD = 200

    class CoreAudioEncoder(_ChunkedTransformerEncoder):
        name = "core"

        def __init__(self, core):
            super().__init__()
            self.core = core
            self.kind = type(getattr(core, "model", None)).__name__
            self.dim = None  # known after the first encode

        def _encode_region(self, wave):
            count = n_features(wave.numel())
            wav2vec = "Whisper" not in self.kind
            if wav2vec:  # 400-sample receptive field, 320 hop: 200 zeros each side centre feature i on sample i*320
                wave = torch.nn.functional.pad(wave, (WAV2VEC_PAD, WAV2VEC_PAD))
            out = self.core.encode_audio(wave.reshape(1, 1, -1), SAMPLE_RATE)
            layers = out.get("encoded_audio_all_layers")
            if wav2vec and layers is not None and len(layers) > 1:
                feats = torch.stack([layer.float() for layer in layers[1:]]).mean(0)[0]
            else:
                feats = out["encoded_audio"][0].float()
            feats = feats.cpu()[:count]  # Whisper pads every window to 30 s
            self.dim = int(feats.shape[-1])
            return feats

    return CoreAudioEncoder(encoder)


# ---- the loader's one call --------------------------------------------------------------------------------
def load_model(model_path: Path, vae_path: Path | None, text_path: Path | None, weight_dtype: str,
               core_vae=None, core_clip=None) -> OmniHumanModel:
    """OMNIHUMAN_MODEL from the files (or ComfyUI's VAE / CLIP in their place); checks they fit together."""
    from omnihuman_core.pipeline import Renderer, RenderSettings
    from omnihuman_core.weights import file_fingerprint

    settings = RenderSettings.for_model(model_path)
    mmdit, device, dtype = load_mmdit(model_path, weight_dtype)
    identity = {"model": f"{model_path.name}:{file_fingerprint(model_path)}"}
    if core_vae is not None:
        vae = core_vae_adapter(core_vae)
        identity["vae"] = f"core-vae:{_core_identity(core_vae, 'first_stage_model')}"
    else:
        vae = load_vae(vae_path)
        identity["vae"] = f"{vae_path.name}:{file_fingerprint(vae_path)}"
    if core_clip is not None:
        text = core_clip_adapter(core_clip, mmdit.config.text_dim)
        identity["text_encoder"] = f"core-clip:{_core_identity(core_clip, 'cond_stage_model')}"
    else:
        text = load_text_encoder(text_path)
        identity["text_encoder"] = f"{text_path.name}:{file_fingerprint(text_path)}"
    # Same check as the CLI's: channels, temporal patch, text dim (the audio dim is checked by the encoder node).
    Renderer(mmdit, vae, text, None, device, dtype, settings).check_components()
    return OmniHumanModel(mmdit, vae, text, settings, device, dtype, identity)


def _core_identity(core, attr: str) -> str:
    """Identity of a ComfyUI model object for resume: a hash of its weights."""
    from omnihuman_core.pipeline import module_identity

    module = getattr(core, attr, None)
    if isinstance(module, torch.nn.Module):
        return module_identity(module)[:16]
    return f"{type(core).__name__}-{id(core)}"  # unknown layout: never resume across objects
