"""generate(): the whole System 1 job in one call (reference image + audio + prompts -> MP4).

Order of work: validate everything (settings, component compatibility, image, audio, prompt count,
resolution, output path) before any model runs; then encode the reference image with the VAE,
encode the whole audio once, and let the SegmentChainer stream frames into the MP4 writer.
The CLI and the ComfyUI nodes call this.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import Cancelled, InputError, WeightsError
from .chainer import ChainProgress, module_place, ReflectionHook, SegmentChainer, WorkFolder, check_prompts
from .segments import Segment, frame_count, plan_segments
from .settings import RenderSettings

__all__ = ["GenerateResult", "RenderSettings", "Renderer", "generate", "module_identity"]

WORK_SUFFIX = ".work"  # default work folder: next to the output, "<name>.mp4.work/"


def module_identity(module: Any) -> str:
    """Content hash of a module's state dict (identity for resume when no weights file is known).

    Reads every weight once; models loaded with `Renderer.from_files` use the cheaper file fingerprint.
    """
    inner = module if isinstance(module, torch.nn.Module) else getattr(module, "model", None)
    if not isinstance(inner, torch.nn.Module):
        # Weightless (e.g. the mel front end): its class and plain settings are its identity.
        names = set(vars(module)) | {"dim", "feature_rate"}
        plain = {k: getattr(module, k) for k in sorted(names)
                 if not k.startswith("_") and isinstance(getattr(module, k, None), (bool, int, float, str, tuple))}
        return f"{type(module).__qualname__}:{json.dumps(plain, sort_keys=True)}"
    h = hashlib.sha256(type(module).__name__.encode())
    for name, tensor in sorted(inner.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]


def _spec_identity(spec: Any) -> str:
    """Identity of an encoder spec: a file's fingerprint, a folder's file list, or the spec string."""
    from ..weights import file_fingerprint

    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file():
        return f"{path.name}:{file_fingerprint(path)}"
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(f"{p.relative_to(path)}:{p.stat().st_size}".encode())
        return f"{path.name}:{h.hexdigest()[:16]}"
    return text


@dataclass
class Renderer:
    """The System 1 components plus how to render with them."""

    model: Any  # MMDiT (or anything with its forward signature and a `config`)
    vae: Any  # VideoVAE
    text_encoder: Any  # TextEncoder
    audio_encoder: Any  # AudioEncoder
    device: torch.device | str | None = None
    dtype: torch.dtype | None = None  # model dtype; the sampler state stays float32
    settings: RenderSettings = field(default_factory=RenderSettings)
    # Identity of each component for the resume fingerprint; missing entries are computed by
    # hashing the component's weights (from_files fills them from the files instead).
    identity: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_files(
        cls,
        model_path: str | os.PathLike,
        vae_path: str | os.PathLike,
        text_encoder_spec: str = "builtin:demo",
        audio_encoder_spec: str = "mel",
        device=None,
        dtype: torch.dtype | None = None,
        settings: RenderSettings | None = None,
        vae_dtype: torch.dtype | None = None,
    ) -> "Renderer":
        """Load the MMDiT and VAE from their safetensors files and build the encoders from their specs.

        `settings` None = the model file's own render settings (`RenderSettings.for_model`).
        """
        from ..audio import load_audio_encoder
        from ..model import MMDiT, MMDiTConfig
        from ..text import load_text_encoder
        from ..vae import CausalVideoVAE
        from ..weights import file_fingerprint, load_into, load_safetensors

        state, config = load_safetensors(model_path, "mmdit")
        try:
            model_config = MMDiTConfig.from_dict(config)
        except InputError as e:
            raise WeightsError(f"{model_path}: {e}") from e
        model = MMDiT(model_config, device=device, dtype=dtype)
        load_into(model, state, model_path)
        del state
        state, config = load_safetensors(vae_path, "vae")
        try:
            vae = CausalVideoVAE.from_config(config, device=device, dtype=vae_dtype or dtype)
        except InputError as e:
            raise WeightsError(f"{vae_path}: {e}") from e
        load_into(vae, state, vae_path)
        del state
        text_encoder = load_text_encoder(text_encoder_spec, device=device, dtype=dtype)
        audio_encoder = load_audio_encoder(audio_encoder_spec, device=device)
        identity = {
            "model": f"{Path(model_path).name}:{file_fingerprint(model_path)}",
            "vae": f"{Path(vae_path).name}:{file_fingerprint(vae_path)}",
            "text_encoder": _spec_identity(text_encoder_spec),
            "audio_encoder": _spec_identity(audio_encoder_spec),
        }
        return cls(model.eval(), vae.eval(), text_encoder.eval() if hasattr(text_encoder, "eval") else text_encoder,
                   audio_encoder, device, dtype, settings or RenderSettings.for_model(model_path), identity)

    # ---- checks --------------------------------------------------------------------------------------
    def spatial_multiple(self) -> int:
        """Output sides must be multiples of this: VAE spatial factor x the model's spatial patch."""
        sf = int(self.vae.spatial_factor)
        config = getattr(self.model, "config", None)
        _, ph, pw = getattr(config, "patch_size", (1, 1, 1))
        return sf * math.lcm(int(ph), int(pw))

    def check_components(self) -> None:
        """Raise WeightsError if the model, VAE and encoders were not made for each other."""
        config = getattr(self.model, "config", None)
        if config is None:
            return
        problems = []
        if getattr(config, "latent_channels", None) != self.vae.latent_channels:
            problems.append(f"the VAE has {self.vae.latent_channels} latent channels, the MMDiT expects "
                            f"{config.latent_channels}")
        if getattr(config, "patch_size", (1,))[0] != 1:
            problems.append(f"MMDiT temporal patch {config.patch_size[0]} is not supported by the sampler (use 1)")
        text_dim = getattr(self.text_encoder, "dim", None)
        if text_dim is not None and text_dim != config.text_dim:
            problems.append(f"the text encoder gives {text_dim}-dim features, the MMDiT expects {config.text_dim}")
        audio_dim = getattr(self.audio_encoder, "dim", None)
        window = self.settings.audio_window
        if audio_dim is not None and audio_dim * window != config.audio_dim:
            problems.append(
                f"the audio encoder gives {audio_dim}-dim features x audio_window {window} = {audio_dim * window} "
                f"per audio token, the MMDiT expects {config.audio_dim}"
            )
        if problems:
            raise WeightsError("these components do not fit together: " + "; ".join(problems)
                               + ". Use the encoders and VAE the model was trained with.")

    def identities(self) -> dict[str, str]:
        """Identity of every component; missing ones are hashed from the weights on every call (not
        cached: a model trained further in memory must not resume a render of its older self)."""
        return {name: self.identity.get(name) or module_identity(getattr(self, name))
                for name in ("model", "vae", "text_encoder", "audio_encoder")}


@dataclass
class GenerateResult:
    """What generate() wrote."""

    path: Path
    frames: int
    fps: float
    duration: float  # seconds of video (frames / fps)
    segments: list[Segment]
    prompts: list[str]  # the prompt each segment was rendered with (after Reflection)
    width: int
    height: int
    resumed_segments: int = 0
    work_dir: Path | None = None  # kept work folder, or None if it was removed


def _load_image(image):
    from PIL import Image

    from ..media import image_from_array, load_image

    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, (np.ndarray, torch.Tensor)):
        return image_from_array(image)
    raise InputError(f"image must be a file path, PIL image or array, got {type(image).__name__}")


def _load_audio(audio):
    from ..audio import Audio, audio_from_array, load_audio

    if isinstance(audio, Audio):
        return audio
    if isinstance(audio, (str, os.PathLike)):
        return load_audio(audio)
    if isinstance(audio, dict) and "waveform" in audio and "sample_rate" in audio:  # ComfyUI AUDIO
        return audio_from_array(audio["waveform"], audio["sample_rate"])
    if isinstance(audio, (tuple, list)) and len(audio) == 2:
        return audio_from_array(audio[0], audio[1])
    raise InputError(
        f"audio must be a file path, an Audio, a (waveform, sample_rate) pair or ComfyUI AUDIO, got {type(audio).__name__}"
    )


def _resolve_prompts(prompts, n_segments: int) -> list[str]:
    """None -> no text; one string -> the same prompt for every segment; a list -> one per segment."""
    if prompts is None:
        return [""] * n_segments
    if isinstance(prompts, str):
        return [prompts] * n_segments
    return check_prompts(prompts, n_segments)[:n_segments]


def _check_output(out_path) -> Path:
    out = Path(out_path)
    if out.is_dir():
        raise InputError(f"output '{out}' is a folder; give a file name such as {out / 'out.mp4'}")
    if out.suffix.lower() != ".mp4":
        raise InputError(f"output '{out}' must be an .mp4 file (H.264 + AAC); use {out.with_suffix('.mp4')}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the output folder '{out.parent}' ({e.strerror})") from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise InputError(f"output folder '{out.parent}' is not writable; choose another output path")
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def generate(
    renderer: Renderer,
    image,
    audio,
    prompts: Sequence[str] | str | None,
    *,
    out_path: str | os.PathLike,
    seed: int = 0,
    work_dir: str | os.PathLike | None = None,
    progress: Callable[[ChainProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    reflection: ReflectionHook | None = None,
    keep_work: bool | None = None,
    on_mismatch: str = "restart",
) -> GenerateResult:
    """Render `image` speaking `audio` into an MP4 at `out_path`; duration = the audio's, to the frame.

    `prompts`: one per segment (a single string is used for every segment). `work_dir` (default
    `<out_path>.work`) holds finished segments so an interrupted run resumes; the default folder is
    removed after success unless `keep_work`, an explicit one is kept.
    """
    from ..audio import frame_features
    from ..media import VideoWriter, choose_size, fit_image

    # ---- 1. validate everything, cheapest first -----------------------------------------------------
    s = renderer.settings
    s.validate()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an integer, got {seed!r}")
    renderer.check_components()
    out = _check_output(out_path)
    pil = _load_image(image)
    width, height = choose_size(pil.width, pil.height, s.short_side, renderer.spatial_multiple())
    renderer.vae.check_size(height, width)
    sound = _load_audio(audio)
    n_frames = frame_count(sound.duration, s.fps)
    if n_frames < 1:
        raise InputError(
            f"the audio is {sound.duration * 1000:.0f} ms long, shorter than one frame at {s.fps:g} fps; "
            "give at least a fraction of a second of speech"
        )
    segments = plan_segments(n_frames, s.segment_frames, s.motion_frames, int(renderer.vae.temporal_factor))
    prompt_list = _resolve_prompts(prompts, len(segments))
    if cancel is not None and cancel():
        raise Cancelled("cancelled before rendering started")

    explicit_work = work_dir is not None
    work = Path(work_dir) if explicit_work else out.with_name(out.name + WORK_SUFFIX)
    keep_work = explicit_work if keep_work is None else keep_work
    device = renderer.device

    # ---- 2. encode the conditions once ----------------------------------------------------------------
    with torch.no_grad():
        vae_device, vae_dtype = module_place(renderer.vae, device)
        pixels = fit_image(pil, width, height, device=vae_device, dtype=vae_dtype)  # [3, H, W] in -1..1
        reference_latent = renderer.vae.encode(pixels[None, :, None]).float()
        del pixels
        feats = renderer.audio_encoder.encode(sound.waveform).float().cpu()
        audio_frames = frame_features(feats, renderer.audio_encoder.feature_rate, s.fps, n_frames, s.audio_window)
        del feats

    fingerprint = {
        "image": _sha256(pil.tobytes() + f"{pil.mode}{pil.size}".encode()),
        "audio": _sha256(sound.waveform.detach().cpu().float().numpy().tobytes()),
        "size": [width, height],
        "weights": renderer.identities(),
        "dtype": str(renderer.dtype or module_place(renderer.model, device)[1]),
        "vae_dtype": str(vae_dtype),
        # Floating-point results differ between device types; a resumed run must match bit for bit.
        "device": torch.device(device).type if device is not None else "default",
    }

    # ---- 3. render, streaming into the MP4 --------------------------------------------------------------
    chainer = SegmentChainer(renderer.model, renderer.vae, renderer.text_encoder, s,
                             device=device, dtype=renderer.dtype)
    partial = out.with_name(out.stem + ".partial" + out.suffix)
    writer = VideoWriter(partial, s.fps, width, height, audio=sound)
    try:
        result = chainer.run(
            n_frames, prompt_list, reference_latent=reference_latent, audio_frames=audio_frames, seed=int(seed),
            on_frames=writer.write, work_dir=work, fingerprint=fingerprint, progress=progress, cancel=cancel,
            hook=reflection, on_mismatch=on_mismatch,
        )
        writer.close()
    except BaseException:
        try:
            writer.close()
        except Exception:
            pass
        partial.unlink(missing_ok=True)  # the work folder keeps the finished segments
        raise
    os.replace(partial, out)

    kept: Path | None = work
    if not keep_work:
        folder = WorkFolder(work)
        folder.clear(folder.read())
        if work.exists() and not any(work.iterdir()):
            shutil.rmtree(work, ignore_errors=True)
        kept = None
    return GenerateResult(out, n_frames, float(s.fps), n_frames / s.fps, result.segments, result.prompts,
                          width, height, result.resumed_segments, kept)
