"""Everything the pack needs from ComfyUI, in one place; the only module that imports ComfyUI.

Inside a running ComfyUI (its `comfy.model_management` is already imported when packs load) this
uses the real services: model folders, devices and dtypes, ModelPatcher memory management,
`comfy.ops` layers, the progress bar with previews and Cancel. Anywhere else (tests, notebooks) it
falls back to plain behaviour, so the node classes can be imported and called without ComfyUI:
model folders from `FALLBACK_MODEL_PATHS`, CPU (or CUDA when present), no progress UI, and an
interrupt flag that `request_interrupt()` sets.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import torch

log = logging.getLogger("omnihuman")

PACK_DIR = Path(__file__).resolve().parents[1]
MODEL_FOLDER = "omnihuman"  # the ComfyUI model folder name (models/omnihuman, plus the pack's models/)
PACK_MODELS = PACK_DIR / "models"

# Outside ComfyUI: where model files are looked up ($OMNIHUMAN_MODEL_PATHS, os.pathsep-separated,
# else the pack's own models/ folder). Tests point this at a temporary folder.
FALLBACK_MODEL_PATHS: list[Path] = [
    Path(p) for p in os.environ.get("OMNIHUMAN_MODEL_PATHS", "").split(os.pathsep) if p
] or [PACK_MODELS]
# Outside ComfyUI: where work folders go ($OMNIHUMAN_OUTPUT_DIR, else the system temp folder).
FALLBACK_OUTPUT_DIR: Path = Path(os.environ.get("OMNIHUMAN_OUTPUT_DIR") or Path(tempfile.gettempdir()) / "omnihuman-output")
# Outside ComfyUI: called as hook(value, total, preview_pil_or_None) on every progress update (tests).
FALLBACK_PROGRESS_HOOK: Callable[[int, int, Any], None] | None = None

_interrupt = threading.Event()  # the fallback Cancel flag
_api: SimpleNamespace | None | bool = None


def comfy() -> SimpleNamespace | None:
    """ComfyUI's modules when running inside ComfyUI, else None (decided once, on first use).

    Only a ComfyUI that is already running counts: importing ComfyUI from here would parse its
    command line and initialise devices as a side effect of merely importing the pack.
    """
    global _api
    if _api is None:
        _api = False
        if "comfy.model_management" in sys.modules:
            try:
                import comfy.cli_args
                import comfy.model_management
                import comfy.model_patcher
                import comfy.ops
                import comfy.utils
                import folder_paths
            except Exception as e:  # a broken or unfamiliar ComfyUI: run plain rather than not at all
                log.warning("OmniHuman: ComfyUI found but not usable (%s); running without its services", e)
            else:
                _api = SimpleNamespace(mm=comfy.model_management, patcher=comfy.model_patcher, ops=comfy.ops,
                                       utils=comfy.utils, args=comfy.cli_args.args,
                                       LatentPreviewMethod=comfy.cli_args.LatentPreviewMethod, folder_paths=folder_paths)
    return _api or None


# ---- model folders --------------------------------------------------------------------------------
def register_model_folder() -> None:
    """Add `<ComfyUI models>/omnihuman` and the pack's `models/` to the `omnihuman` folder.

    Appended, so paths a user set in extra_model_paths.yaml (applied before packs load) stay first.
    """
    c = comfy()
    if c is None:
        return
    fp = c.folder_paths
    for path in (os.path.join(fp.models_dir, MODEL_FOLDER), str(PACK_MODELS)):
        fp.add_model_folder_path(MODEL_FOLDER, path)


def model_paths() -> list[Path]:
    """The folders of the `omnihuman` model folder, in lookup order."""
    c = comfy()
    if c is not None:
        try:
            return [Path(p) for p in c.folder_paths.get_folder_paths(MODEL_FOLDER)]
        except KeyError:
            return [Path(c.folder_paths.models_dir) / MODEL_FOLDER, PACK_MODELS]
    return [Path(p) for p in FALLBACK_MODEL_PATHS]


def _safe_relative(name: str) -> str | None:
    """`name` as a relative path inside a model folder, or None if it tries to leave it."""
    rel = Path(os.path.normpath(str(name).replace("\\", "/")))
    if rel.is_absolute() or not rel.parts or rel.parts[0] == "..":
        return None
    return rel.as_posix()


def find_model_file(name: str) -> Path | None:
    """The first file called `name` (relative, e.g. `demo/mmdit.safetensors`) in the model folders."""
    rel = _safe_relative(name)
    if rel is None:
        return None
    for folder in model_paths():
        candidate = folder / rel
        if candidate.is_file():
            return candidate
    return None


def list_model_files(suffix: str = ".safetensors") -> list[str]:
    """Relative names of the files ending in `suffix` in every model folder (sorted, no duplicates)."""
    found = set()
    for folder in model_paths():
        if not folder.is_dir():
            continue
        for root, dirs, files in os.walk(folder, followlinks=True):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in files:
                if f.lower().endswith(suffix):
                    found.add((Path(root) / f).relative_to(folder).as_posix())
    return sorted(found)


def list_model_dirs(subfolder: str, marker: str = "config.json") -> list[str]:
    """Relative names (`subfolder/<name>`) of the folders under `subfolder` that contain `marker`."""
    found = set()
    for folder in model_paths():
        base = folder / subfolder
        if base.is_dir():
            for child in base.iterdir():
                if child.is_dir() and (child / marker).is_file():
                    found.add(f"{subfolder}/{child.name}")
    return sorted(found)


def find_model_dir(name: str) -> Path | None:
    rel = _safe_relative(name)
    if rel is None:
        return None
    for folder in model_paths():
        if (folder / rel).is_dir():
            return folder / rel
    return None


def output_dir() -> Path:
    """ComfyUI's output folder (outside ComfyUI: FALLBACK_OUTPUT_DIR)."""
    c = comfy()
    return Path(c.folder_paths.get_output_directory()) if c is not None else Path(FALLBACK_OUTPUT_DIR)


# ---- devices and dtypes ---------------------------------------------------------------------------
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def torch_device() -> torch.device:
    """Where models compute (ComfyUI's choice; outside it CUDA if present, else CPU)."""
    c = comfy()
    if c is not None:
        return c.mm.get_torch_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def offload_device() -> torch.device:
    """Where model weights wait while another model has the GPU."""
    c = comfy()
    return c.mm.unet_offload_device() if c is not None else torch_device()


def intermediate_device() -> torch.device:
    """Where node outputs (IMAGE, AUDIO) live between nodes."""
    c = comfy()
    return c.mm.intermediate_device() if c is not None else torch.device("cpu")


def text_encoder_devices() -> tuple[torch.device, torch.device, torch.dtype]:
    """(load device, offload device, dtype) for text encoders."""
    c = comfy()
    if c is not None:
        dev = c.mm.text_encoder_device()
        return dev, c.mm.text_encoder_offload_device(), c.mm.text_encoder_dtype(dev)
    return torch_device(), torch_device(), torch.float32


def vae_devices() -> tuple[torch.device, torch.device, torch.dtype]:
    """(load device, offload device, dtype) for VAEs."""
    c = comfy()
    if c is not None:
        dev = c.mm.vae_device()
        return dev, c.mm.vae_offload_device(), c.mm.vae_dtype(dev, [torch.bfloat16, torch.float32])
    return torch_device(), torch_device(), torch.float32


def model_dtypes(choice: str, device: torch.device, n_params: int) -> tuple[torch.dtype, torch.dtype]:
    """(weight dtype, compute dtype) for a diffusion model: `choice` is auto / fp32 / fp16 / bf16.

    In ComfyUI "auto" follows its rules (command line flags, what the GPU supports); weights the
    device cannot compute in are cast on the fly. Outside ComfyUI "auto" is float32.
    """
    c = comfy()
    supported = [torch.bfloat16, torch.float16, torch.float32]
    if choice == "auto":
        weight = c.mm.unet_dtype(device, n_params, supported) if c is not None else torch.float32
    else:
        weight = DTYPES[choice]
    compute = (c.mm.unet_manual_cast(weight, device, supported) if c is not None else None) or weight
    return weight, compute


def operations(weight_dtype: torch.dtype, compute_dtype: torch.dtype, device: torch.device):
    """The layer namespace models are built from: `comfy.ops` (lazy, castable, partially loadable
    weights) inside ComfyUI, `torch.nn` outside."""
    c = comfy()
    if c is None:
        return torch.nn
    return c.ops.pick_operations(weight_dtype, compute_dtype, load_device=device)


# ---- memory management ----------------------------------------------------------------------------
class _Holder(torch.nn.Module):
    """What ModelPatcher manages: it sets `device` and bookkeeping attributes on the module it holds,
    which the pack's modules expose as read-only properties."""

    def __init__(self, inner: torch.nn.Module, device: torch.device, dtype: torch.dtype):
        super().__init__()
        self.inner = inner
        self.device = device
        self._omnihuman_dtype = dtype

    def get_dtype(self) -> torch.dtype:
        return self._omnihuman_dtype


class Managed:
    """A torch module that ComfyUI moves to the GPU when it is used and offloads when others need room.

    `full_load=True` for modules built from plain `torch.nn` layers (VAE, text encoders): they must sit
    on one device as a whole. Diffusion models built with `operations()` may load partially in low
    VRAM. Outside ComfyUI the module simply stays on its load device.
    """

    def __init__(self, module: torch.nn.Module, *, load_device, offload_device, dtype: torch.dtype,
                 full_load: bool):
        self.module = module.eval().requires_grad_(False)
        self.load_device = torch.device(load_device)
        self.offload_device = torch.device(offload_device)
        self.dtype = dtype
        self.full_load = full_load
        c = comfy()
        self.patcher = None
        if c is not None:
            holder = _Holder(self.module, self.offload_device, dtype)
            self.patcher = c.patcher.ModelPatcher(holder, load_device=self.load_device,
                                                  offload_device=self.offload_device)
        else:
            self.module.to(self.load_device)

    def load(self, memory_required: int = 0) -> None:
        """Make the module usable on `load_device` (loads it, or the rest of it, if it was offloaded)."""
        c = comfy()
        if c is not None and self.patcher is not None:
            c.mm.load_models_gpu([self.patcher], memory_required=memory_required, force_full_load=self.full_load)


# ---- progress, previews, Cancel --------------------------------------------------------------------
def previews_enabled() -> bool:
    """Whether the user asked for sampler previews (ComfyUI's preview method is not "none")."""
    c = comfy()
    if c is None:
        return FALLBACK_PROGRESS_HOOK is not None
    return c.args.preview_method != c.LatentPreviewMethod.NoPreviews


class Progress:
    """One progress bar on the running node; `update` takes an optional PIL preview image.

    In ComfyUI every update also checks Cancel (it raises ComfyUI's interrupt exception).
    """

    def __init__(self, total: int):
        self.total = max(1, int(total))
        c = comfy()
        self.bar = c.utils.ProgressBar(self.total) if c is not None else None
        self.preview_size = int(getattr(c.args, "preview_size", 512)) if c is not None else 512

    def update(self, value: int, total: int | None = None, preview=None) -> None:
        if total is not None:
            self.total = max(1, int(total))
        if self.bar is not None:
            self.bar.update_absolute(int(value), self.total,
                                     ("JPEG", preview, self.preview_size) if preview is not None else None)
        elif FALLBACK_PROGRESS_HOOK is not None:
            FALLBACK_PROGRESS_HOOK(int(value), self.total, preview)


def interrupted() -> bool:
    """True once the user pressed Cancel (the flag stays set until `raise_interrupted` consumes it)."""
    c = comfy()
    return c.mm.processing_interrupted() if c is not None else _interrupt.is_set()


def request_interrupt() -> None:
    """Press Cancel (tests; in ComfyUI the same as the Cancel button)."""
    c = comfy()
    if c is not None:
        c.mm.interrupt_current_processing(True)
    else:
        _interrupt.set()


def raise_interrupted(error: BaseException) -> None:
    """Re-raise a core `Cancelled` the way the host expects: ComfyUI's interrupt exception (the queue
    shows "interrupted", not an error), or the original error outside ComfyUI. Clears the flag."""
    c = comfy()
    if c is not None:
        c.mm.throw_exception_if_processing_interrupted()
    else:
        _interrupt.clear()
    raise error
