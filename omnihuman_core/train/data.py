"""Training data: dataset scanning and validation, VAE video windows, the MMDiT latent cache and its batches.

A dataset is a folder of clips, `<clip>/{video.mp4, audio.wav, caption.txt}` (docs/SYNTH.md): the synthetic
world's layout, with `index.json` naming the clips of each split; without it every sub-folder holding a
video.mp4 is a clip. `scan_dataset` checks every clip before any training work (files present and
readable, non-empty caption, audio about as long as the video, one frame size and frame rate for the
whole set, enough frames for a training window): bad clips are named in a warning and skipped, and a
dataset with no usable clip is an InputError naming the folder.

VAE training (`VideoWindows`): clips decoded once into RAM (uint8), random windows of `1 + 4k` frames,
random square crops, random horizontal flips. Batch `k` is a pure function of (seed, rank, k).

MMDiT training (`build_latent_cache`, `LatentBatches`): every training window is VAE-encoded once, since
the MMDiT never needs pixels, which is what makes CPU training affordable. A window holds what the
contract's batch needs (docs/CONTRACTS.md, train/objective.py): the window's normalised latents, the
single-image latent of the clip's real frame `delta` latent frames past the window (the pseudo last
frame), a random frame outside the window (reference-image ablation), the audio tokens of the window
exactly as inference makes them, and the caption. Stored as safetensors shards plus `manifest.json`,
written as they finish (an interrupted build resumes), fingerprinted by the VAE weights and the settings
(a cache of another VAE is rebuilt, never silently reused; the old one is moved aside, not deleted).
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import InputError

CLIP_FILES = ("video.mp4", "audio.wav", "caption.txt")
INDEX_NAME = "index.json"
MANIFEST_NAME = "manifest.json"
CACHE_KIND = "latent_cache"
CACHE_FORMAT = 2  # 2: per-window face masks (`face`) and schedule captions
# Audio may be this much shorter than the video before a clip counts as mismatched (encoder padding,
# rounding of the last frame); "much shorter" is anything beyond.
AUDIO_SLACK_SECONDS = 0.25


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- dataset scanning ---------------------------------------------------------------------------------
@dataclass
class ClipInfo:
    """One usable clip of a dataset, as `scan_dataset` found it."""

    folder: Path
    clip_id: str
    frames: int
    height: int
    width: int
    fps: float
    caption: str = ""
    audio_seconds: float | None = None
    # The clip's timed plan (schedule.json, optional): each training window is captioned with the shot that
    # covers most of it, as each render segment gets its prompt; without one, every window gets caption.txt.
    schedule: object | None = None

    def face_boxes(self) -> np.ndarray | None:
        """Per-frame face boxes `[T, 4]` (x0, y0, x1, y1 px) from the clip's optional labels.npz `face_box`
        (the synthetic world writes them; any face tracker can), else None."""
        path = self.folder / "labels.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            if "face_box" not in z.files:
                return None
            boxes = np.asarray(z["face_box"], np.float32)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] < self.frames:
            raise InputError(f"{path}: face_box must be [frames={self.frames}, 4] (x0, y0, x1, y1 px), "
                             f"got {list(boxes.shape)}")
        return boxes

    def window_caption(self, start: int, frames: int) -> str:
        """The caption of frames [start, start + frames): its schedule's shot there, else caption.txt."""
        if self.schedule is None:
            return self.caption
        shots = self.schedule.shots
        return shots[self.schedule.shot_between(start / self.fps, (start + frames) / self.fps)].text()

    @property
    def video(self) -> Path:
        return self.folder / "video.mp4"

    @property
    def audio(self) -> Path:
        return self.folder / "audio.wav"


def clip_folders(data_dir, split: str | None = "train") -> list[Path]:
    """Clip folders of `split`: index.json's list when there is one, else every folder holding a video.mp4.

    Folders index.json lists are returned even when missing, so `scan_dataset` can name them.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"dataset folder {root} does not exist; pass the folder holding the clips "
                         "(make a synthetic one with `python -m omnihuman_core synth --out DIR`)")
    index = root / INDEX_NAME
    if index.exists() and split is not None:
        try:
            splits = json.loads(index.read_text(encoding="utf-8")).get("splits", {})
        except ValueError as e:
            raise InputError(f"{index} is not valid JSON ({e}); repair or delete it") from e
        if split not in splits:
            raise InputError(f"{index} has no split {split!r} (it has: {', '.join(sorted(splits)) or 'none'})")
        folders = [root / e["path"] for e in splits[split]]
    else:
        folders = sorted({p.parent for p in root.rglob("video.mp4") if p.is_file()})
    if not folders:
        raise InputError(f"no clips found in {root}: expected sub-folders holding video.mp4 + audio.wav + caption.txt")
    return folders


def _probe_clip(folder: Path, need_audio: bool, need_caption: bool) -> tuple[ClipInfo | None, str | None]:
    from ..media import probe_video

    missing = [n for n in CLIP_FILES if not (folder / n).is_file()
               and (n == "video.mp4" or (n == "audio.wav" and need_audio) or (n == "caption.txt" and need_caption))]
    if missing:
        return None, f"missing {', '.join(missing)}"
    try:
        info = probe_video(folder / "video.mp4")
    except Exception as e:  # any decoder failure means the clip is unusable, not that training must stop
        return None, f"video.mp4 unreadable ({e})"
    if not info.get("frames") or not info.get("fps"):
        return None, "video.mp4 has no frames"
    clip = ClipInfo(folder, folder.name, int(info["frames"]), int(info["height"]), int(info["width"]),
                    float(info["fps"]))
    if need_caption:
        try:
            clip.caption = (folder / "caption.txt").read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            return None, f"caption.txt unreadable ({e})"
        if not clip.caption:
            return None, "caption.txt is empty"
        if (folder / "schedule.json").is_file():
            from ..schedule import Schedule

            try:
                clip.schedule = Schedule.load(folder / "schedule.json")
            except (InputError, OSError, ValueError) as e:
                return None, f"schedule.json is not a valid schedule ({e}); fix or delete it"
    if need_audio:
        from ..audio import load_audio

        try:
            sound = load_audio(folder / "audio.wav", max_seconds=None, allow_silent=True)
        except Exception as e:
            return None, f"audio.wav unreadable ({e})"
        clip.audio_seconds = sound.duration
        video_seconds = clip.frames / clip.fps
        if sound.duration < video_seconds - AUDIO_SLACK_SECONDS:
            return None, f"audio.wav is {sound.duration:.2f} s but the video {video_seconds:.2f} s"
    return clip, None


def scan_dataset(
    data_dir,
    split: str | None = "train",
    *,
    need_audio: bool = True,
    need_caption: bool = True,
    min_frames: int = 1,
    max_clips: int = 0,
    seed: int = 0,
    log: Callable[[str], None] | None = _stderr,
) -> list[ClipInfo]:
    """Usable clips of a dataset (see the module docstring); skipped ones are named through `log`.

    `max_clips` > 0 keeps a seeded random subset of that many usable clips (every identity equally likely).
    The majority frame size and frame rate define the dataset; clips that differ are skipped.
    """
    log = log or (lambda msg: None)
    root = Path(data_dir)
    folders = clip_folders(root, split)
    clips, skipped = [], []
    for folder in folders:
        clip, why = _probe_clip(folder, need_audio, need_caption)
        if why is None and clip.frames < min_frames:
            why = f"{clip.frames} frames, a training window needs {min_frames}"
        if why is not None:
            skipped.append(f"{folder.name}: {why}")
        else:
            clips.append(clip)
    if clips:
        size = collections.Counter((c.height, c.width) for c in clips).most_common(1)[0][0]
        fps = collections.Counter(round(c.fps, 3) for c in clips).most_common(1)[0][0]
        kept = []
        for c in clips:
            if (c.height, c.width) != size:
                skipped.append(f"{c.clip_id}: frame size {c.width}x{c.height} differs from the dataset's {size[1]}x{size[0]}")
            elif round(c.fps, 3) != fps:
                skipped.append(f"{c.clip_id}: {c.fps:g} fps differs from the dataset's {fps:g}")
            else:
                kept.append(c)
        clips = kept
    if skipped:
        shown = "; ".join(skipped[:20]) + (f"; ... and {len(skipped) - 20} more" if len(skipped) > 20 else "")
        log(f"warning: skipped {len(skipped)} of {len(folders)} clip(s) in {root}: {shown}")
    if not clips:
        raise InputError(f"no usable clips in {root} (split {split!r}): {'; '.join(skipped[:5])}"
                         f"{' ...' if len(skipped) > 5 else ''}. Each clip needs video.mp4"
                         f"{', audio.wav' if need_audio else ''}{', caption.txt' if need_caption else ''}")
    if max_clips and len(clips) > max_clips:
        order = np.random.default_rng([int(seed), 0xC11]).permutation(len(clips))[:max_clips]
        clips = [clips[i] for i in sorted(order)]
    return clips


# ---- VAE windows ------------------------------------------------------------------------------------------
def _to_video(frames_uint8: np.ndarray) -> torch.Tensor:
    """uint8 [..., T, H, W, 3] -> float32 [..., 3, T, H, W] in -1..1."""
    x = torch.from_numpy(np.ascontiguousarray(frames_uint8))
    x = x.movedim(-1, -4).float()
    return x / 127.5 - 1.0


class VideoWindows:
    """Random `frames`-frame windows of clips held in RAM, cropped to `crop` px squares: VAE training batches.

    `batch(step)` -> float32 `[batch_size, 3, frames, crop, crop]` in -1..1, a pure function of
    (seed, rank, step). Under torchrun each rank holds and samples only its share of the clips.
    """

    def __init__(self, clips: list[ClipInfo], *, frames: int, crop: int, batch_size: int, seed: int = 0,
                 rank: int = 0, world: int = 1, flip: bool = True, face_crops: float = 0.0,
                 log: Callable[[str], None] | None = _stderr):
        from ..media import read_video_frames

        if isinstance(frames, bool) or int(frames) != frames or frames < 1 or (frames - 1) % 4:
            raise InputError(f"frames must be 1 + 4k (5, 9, 17, 33, ...), got {frames!r}")
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {batch_size}")
        mine = clips[rank::world] or clips
        self.frames, self.crop, self.batch_size = int(frames), int(crop), int(batch_size)
        self.seed, self.rank, self.flip = int(seed), int(rank), bool(flip)
        if not 0.0 <= face_crops <= 1.0:
            raise InputError(f"face_crops must be a probability in [0, 1], got {face_crops!r}")
        # With probability face_crops a crop is placed over the clip's face box (clips that have one): the
        # mouth is a few pixels of a frame, and random crops would rarely show the VAE how it opens.
        self.face_crops = float(face_crops)
        self.videos: list[np.ndarray] = []
        self.faces: list[np.ndarray | None] = []
        self.clip_ids: list[str] = []
        t0 = time.monotonic()
        for c in mine:
            if c.frames < frames:
                continue
            try:
                v = read_video_frames(c.video)
            except Exception as e:  # scanned fine but fails to decode: skip it, name it
                (log or (lambda m: None))(f"warning: skipped {c.clip_id}: video.mp4 failed to decode ({e})")
                continue
            if v.shape[0] >= frames:
                self.videos.append(v)
                self.clip_ids.append(c.clip_id)
                try:
                    self.faces.append(c.face_boxes() if face_crops > 0 else None)
                except (InputError, OSError, ValueError):
                    self.faces.append(None)  # a broken optional file: plain random crops for this clip
        if not self.videos:
            raise InputError(f"no clip has {frames} decodable frames; lower --frames")
        h, w = self.videos[0].shape[1:3]
        if crop < 1 or crop > min(h, w):
            raise InputError(f"crop {crop} px does not fit the {w}x{h} frames; use at most {min(h, w)}")
        if log:
            mb = sum(v.nbytes for v in self.videos) / 2**20
            log(f"decoded {len(self.videos)} clips into RAM ({mb:.0f} MB) in {time.monotonic() - t0:.0f} s")

    @property
    def frame_size(self) -> tuple[int, int]:
        return tuple(self.videos[0].shape[1:3])

    def batch(self, step: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.rank, int(step), 0xFA])
        out = []
        for _ in range(self.batch_size):
            i = int(rng.integers(len(self.videos)))
            v, faces = self.videos[i], self.faces[i]
            T, H, W, _ = v.shape
            s = int(rng.integers(T - self.frames + 1))
            y, x = int(rng.integers(H - self.crop + 1)), int(rng.integers(W - self.crop + 1))
            # Drawn for every crop (used or not), so the batch's other draws do not depend on the data.
            face_draw, jy, jx = rng.random(), rng.random(), rng.random()
            if faces is not None and face_draw < self.face_crops:
                x0, y0, x1, y1 = faces[s + self.frames // 2]
                # A random crop position that keeps the face box's centre in the crop's middle half.
                cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
                y = int(np.clip(cy - self.crop * (0.25 + 0.5 * jy), 0, H - self.crop))
                x = int(np.clip(cx - self.crop * (0.25 + 0.5 * jx), 0, W - self.crop))
            w = v[s:s + self.frames, y:y + self.crop, x:x + self.crop]
            if self.flip and rng.random() < 0.5:
                w = w[:, :, ::-1]
            out.append(w)
        return _to_video(np.stack(out))

    def full_windows(self, n: int, frames: int, seed: int) -> list[torch.Tensor]:
        """`n` uncropped windows `[1, 3, frames, H, W]` (latent statistics, validation)."""
        rng = np.random.default_rng([int(seed), 0x57A7])
        usable = [v for v in self.videos if v.shape[0] >= frames] or self.videos
        frames = min(frames, min(v.shape[0] for v in usable))
        frames = 1 + (frames - 1) // 4 * 4
        out = []
        for _ in range(n):
            v = usable[int(rng.integers(len(usable)))]
            s = int(rng.integers(v.shape[0] - frames + 1))
            out.append(_to_video(v[None, s:s + frames]))
        return out


# ---- MMDiT latent cache ------------------------------------------------------------------------------------
@dataclass
class CacheSettings:
    """What a latent cache was built with (part of its fingerprint)."""

    frames: int = 33
    windows_per_clip: int = 2
    delta: float = 4.0
    audio_window: int = 5
    seed: int = 0
    split: str | None = "train"
    max_clips: int = 0
    audio_encoder: str = "mel"
    store_dtype: str = "float16"
    # Where window captions come from: a clip's schedule.json shot covering the window, else caption.txt.
    captions: str = "schedule"


@dataclass
class LatentCache:
    """A loaded latent cache: tensors `[N, ...]` float (as stored), captions, clip ids, settings."""

    tensors: dict[str, torch.Tensor]
    captions: list[str]
    clip_ids: list[str]
    settings: dict = field(default_factory=dict)
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.captions)

    @classmethod
    def load(cls, cache_dir) -> "LatentCache":
        from ..weights import load_safetensors

        cache_dir = Path(cache_dir)
        manifest = _read_manifest(cache_dir)
        if manifest is None or not manifest.get("complete"):
            raise InputError(f"{cache_dir} holds no complete latent cache; build it with build_latent_cache "
                             "(python -m omnihuman_core train mmdit builds it on the way)")
        parts: dict[str, list[torch.Tensor]] = collections.defaultdict(list)
        captions, clip_ids = [], []
        for shard in manifest["shards"]:
            state, _ = load_safetensors(cache_dir / shard["file"], CACHE_KIND)
            for k, v in state.items():
                parts[k].append(v)
            captions += [w["caption"] for w in shard["windows"]]
            clip_ids += [w["clip_id"] for w in shard["windows"]]
        if not captions:
            raise InputError(f"the latent cache in {cache_dir} is empty; delete it and rebuild")
        return cls({k: torch.cat(v) for k, v in parts.items()}, captions, clip_ids, manifest["settings"], cache_dir)


def _read_manifest(cache_dir: Path) -> dict | None:
    p = cache_dir / MANIFEST_NAME
    if not p.exists():
        return None
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return m if m.get("format") == CACHE_FORMAT else None


def _write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def module_fingerprint(module: torch.nn.Module) -> str:
    """Hash of a module's weights (a cache built with other weights must not be reused)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_vae(vae, device=None, dtype=None):
    """(VAE module in eval mode, fingerprint) from a weights file or a module.

    The fingerprint is always the hash of the weights, never of the file: `train demo` builds the cache
    from the VAE's path and the MMDiT stages then check it with the loaded module, and both must agree
    (a file fingerprint also changes with metadata alone, which does not change a single latent).
    """
    if isinstance(vae, torch.nn.Module):
        return vae.eval(), module_fingerprint(vae)
    from ..vae import CausalVideoVAE
    from ..weights import load_into, load_safetensors

    path = Path(vae)
    state, config = load_safetensors(path, "vae")
    module = CausalVideoVAE.from_config(config, device=device, dtype=dtype)
    load_into(module, state, path)
    return module.eval(), module_fingerprint(module)


def face_mask(boxes: np.ndarray | None, start: int, frames: int, temporal_factor: int, latent_hw, frame_hw) \
        -> torch.Tensor:
    """`[t, h, w]` float: 1 on latent cells that a face box of the window's frames overlaps, else 0.

    Latent frame 0 holds video frame `start`, latent frame j > 0 frames `start + tf*j - (tf-1) .. start + tf*j`
    (the causal VAE's grouping); a cell covers its `H / h` x `W / w` pixels. No boxes: all zeros.
    """
    t = 1 + (frames - 1) // temporal_factor
    h, w = (int(v) for v in latent_hw)
    out = torch.zeros(t, h, w)
    if boxes is None:
        return out
    cell_y, cell_x = frame_hw[0] / h, frame_hw[1] / w
    for j in range(t):
        first = start if j == 0 else start + temporal_factor * j - (temporal_factor - 1)
        for x0, y0, x1, y1 in boxes[first:start + temporal_factor * j + 1]:
            a, b = int(max(0, np.floor(y0 / cell_y))), int(min(h, np.ceil(y1 / cell_y)))
            c, d = int(max(0, np.floor(x0 / cell_x))), int(min(w, np.ceil(x1 / cell_x)))
            if b > a and d > c:
                out[j, a:b, c:d] = 1.0
    return out


def _move_aside(cache_dir: Path, manifest: dict) -> Path:
    """Move a cache's manifest and shards into a sibling folder named after its fingerprint."""
    kept = cache_dir.with_name(f"{cache_dir.name}.{manifest.get('fingerprint', 'old')}")
    n = 1
    while kept.exists():
        kept, n = kept.with_name(f"{cache_dir.name}.{manifest.get('fingerprint', 'old')}.{n}"), n + 1
    kept.mkdir(parents=True)
    for shard in manifest.get("shards", []):
        if (cache_dir / shard["file"]).exists():
            os.replace(cache_dir / shard["file"], kept / shard["file"])
    os.replace(cache_dir / MANIFEST_NAME, kept / MANIFEST_NAME)
    return kept


def _settings_difference(manifest: dict, settings: dict, vae_fp: str) -> str:
    old = manifest.get("settings") or {}
    parts = [f"{k} {old.get(k)!r} -> {v!r}" for k, v in settings.items() if old.get(k) != v]
    if manifest.get("vae") != vae_fp:
        # Other weights or another precision: `train demo` builds its cache with the float32 work file
        # (<work>/vae/vae.safetensors), not the exported half-precision copy next to the models.
        built = manifest.get("vae_file")
        parts.append(f"another VAE; it was built with {built}, pass that file as the VAE to reuse it" if built
                     else "another VAE file (other weights or precision)")
    return ", ".join(parts) or "other clips"


def _listing_signature(dataset_dir, split) -> str:
    """Hash of the clip files of a split (relative paths, sizes, modification times): what the cache saw."""
    root = Path(dataset_dir)
    h = hashlib.sha256()
    for folder in clip_folders(root, split):
        for name in (*CLIP_FILES, "schedule.json", "labels.npz"):
            f = folder / name
            st = f.stat() if f.is_file() else None
            h.update(f"{f.relative_to(root)}:{st.st_size if st else -1}:{st.st_mtime_ns if st else -1};".encode())
    return h.hexdigest()[:16]


def _window_plan(clip: ClipInfo, settings: CacheSettings, temporal_factor: int) -> list[tuple[int, int, int]]:
    """(start, pseudo-last frame, reference frame) per window of one clip, from a per-clip seeded RNG.

    The pseudo last frame is the real frame `delta` latent frames (4 * delta video frames) past the
    window's last frame, where inference puts the reference image; starts are spread without repeats.
    """
    F, T = settings.frames, clip.frames
    future = int(round(settings.delta * temporal_factor))
    last_start = T - F - future
    if last_start < 0:
        return []
    rng = np.random.default_rng([settings.seed, int(hashlib.sha256(clip.clip_id.encode()).hexdigest()[:8], 16)])
    n = min(settings.windows_per_clip, last_start + 1)
    starts = sorted(int(s) for s in rng.choice(last_start + 1, size=n, replace=False))
    plan = []
    for s in starts:
        outside = [k for k in range(T) if not s <= k < s + F]
        ref = int(outside[int(rng.integers(len(outside)))]) if outside else s
        plan.append((s, s + F - 1 + future, ref))
    return plan


def build_latent_cache(
    dataset_dir,
    vae,
    cache_dir,
    frames: int = 33,
    windows_per_clip: int = 2,
    delta: float = 4.0,
    audio_window: int = 5,
    seed: int = 0,
    *,
    split: str | None = "train",
    max_clips: int = 0,
    max_minutes: float | None = None,
    clips_per_shard: int = 32,
    store_dtype: torch.dtype = torch.float16,
    precision: str = "float32",
    device=None,
    log: Callable[[str], None] | None = _stderr,
) -> LatentCache:
    """Encode the training windows of `dataset_dir` once into `cache_dir` (see the module docstring).

    `vae`: a VAE weights file or a module. Reruns reuse a complete cache of the same fingerprint, resume
    an interrupted one, and rebuild one made with another VAE or other settings (the old one is moved to a
    sibling folder `CACHE.<fingerprint>`, never deleted). `max_minutes` stops adding clips when the time is up and marks the cache complete with the
    clips done so far (a time-boxed demo run); clips are visited in a seeded random order, so a
    partial cache still spans the identities. Clips shorter than `frames + 4 * delta` are named and skipped.
    """
    from ..audio import MelEncoder, audio_tokens_for_segment, load_audio
    from ..media import read_video_frames

    log = log or (lambda msg: None)
    if isinstance(frames, bool) or int(frames) != frames or frames < 5 or (frames - 1) % 4:
        raise InputError(f"frames must be 1 + 4k and >= 5 (e.g. 33), got {frames!r}")
    if windows_per_clip < 1 or audio_window < 1 or not delta > 0 or clips_per_shard < 1:
        raise InputError("windows_per_clip, audio_window and clips_per_shard must be >= 1 and delta > 0")
    dtype_name = str(store_dtype).replace("torch.", "")
    settings = CacheSettings(int(frames), int(windows_per_clip), float(delta), int(audio_window), int(seed), split,
                             int(max_clips), "mel", dtype_name)
    module, vae_fp = load_vae(vae, device=device)
    tf = int(module.temporal_factor)
    need = settings.frames + int(round(settings.delta * tf))
    cache_dir = Path(cache_dir)
    # Probing every clip (decoding its audio) takes minutes on a large dataset; a complete cache built from
    # the same files (names, sizes, modification times), settings and VAE is reused without it.
    listing = _listing_signature(dataset_dir, split)
    manifest = _read_manifest(cache_dir)
    if manifest is not None and manifest.get("complete") and manifest.get("listing") == listing \
            and manifest.get("vae") == vae_fp and manifest.get("settings") == asdict(settings):
        log(f"latent cache {cache_dir}: up to date ({sum(len(s['windows']) for s in manifest['shards'])} windows)")
        return LatentCache.load(cache_dir)
    clips = scan_dataset(dataset_dir, split, min_frames=need, max_clips=max_clips, seed=seed, log=log)
    clips = [clips[i] for i in np.random.default_rng([int(seed), 0x0DE]).permutation(len(clips))]
    fingerprint = hashlib.sha256(json.dumps(
        {"settings": asdict(settings), "vae": vae_fp, "clips": [c.clip_id for c in clips],
         "size": [clips[0].height, clips[0].width], "fps": clips[0].fps}, sort_keys=True).encode()).hexdigest()[:16]

    cache_dir.mkdir(parents=True, exist_ok=True)
    if manifest is not None and manifest.get("fingerprint") != fingerprint:
        # Encoding is the expensive part of a run: a cache made with other settings is moved aside, never
        # deleted (a mistyped option must not cost the hours it took), and can be used again with --cache.
        kept = _move_aside(cache_dir, manifest)
        log(f"latent cache in {cache_dir} was built with another VAE, dataset or settings "
            f"({_settings_difference(manifest, asdict(settings), vae_fp)}); moved it to {kept} and rebuilding")
        manifest = None
    if manifest is None:
        manifest = {"format": CACHE_FORMAT, "fingerprint": fingerprint, "settings": asdict(settings),
                    "vae": vae_fp, "vae_file": str(Path(vae).resolve()) if isinstance(vae, (str, os.PathLike)) else None,
                    "fps": clips[0].fps, "frame_size": [clips[0].height, clips[0].width],
                    "shards": [], "clips_done": 0, "complete": False}
    manifest["listing"] = listing
    if manifest["complete"]:
        _write_json_atomic(cache_dir / MANIFEST_NAME, manifest)
        log(f"latent cache {cache_dir}: up to date ({sum(len(s['windows']) for s in manifest['shards'])} windows)")
        return LatentCache.load(cache_dir)

    mel = MelEncoder()
    fps = float(manifest["fps"])
    started = time.monotonic()
    pending: dict[str, list[torch.Tensor]] = collections.defaultdict(list)
    pending_windows: list[dict] = []
    done = int(manifest["clips_done"])
    if done:
        log(f"latent cache {cache_dir}: resuming after {done} of {len(clips)} clips")

    def flush(upto: int) -> None:
        from ..weights import save_safetensors

        if pending_windows:
            name = f"shard_{len(manifest['shards']):05d}.safetensors"
            save_safetensors(cache_dir / name, {k: torch.stack(v) for k, v in pending.items()}, CACHE_KIND,
                             asdict(settings), extra={"fingerprint": fingerprint})
            manifest["shards"].append({"file": name, "windows": list(pending_windows)})
        pending.clear()
        pending_windows.clear()
        manifest["clips_done"] = upto
        _write_json_atomic(cache_dir / MANIFEST_NAME, manifest)

    skipped = []
    i = done
    for i in range(done, len(clips)):
        if max_minutes is not None and time.monotonic() - started > max_minutes * 60:
            log(f"latent cache: time budget of {max_minutes:g} min reached after {i} of {len(clips)} clips")
            break
        clip = clips[i]
        plan = _window_plan(clip, settings, tf)
        try:
            video = read_video_frames(clip.video)
            sound = load_audio(clip.audio, max_seconds=None, allow_silent=True)
        except Exception as e:  # decodes partly or not at all although the probe passed
            skipped.append(f"{clip.clip_id}: {e}")
            continue
        if video.shape[0] < need or not plan:
            skipped.append(f"{clip.clip_id}: decoded {video.shape[0]} frames, needs {need}")
            continue
        try:
            boxes = clip.face_boxes()
        except (InputError, OSError, ValueError) as e:  # a broken optional file: train without face weights
            skipped.append(f"{clip.clip_id}: labels.npz face_box unusable ({e}); its windows get no face weight")
            boxes = None
        feats = mel.encode(sound.waveform).float().cpu()
        # Frames at or past the audio's end get null audio, as in inference (where the audio sets the length).
        audio_seconds = min(sound.duration, video.shape[0] / fps)
        starts = [s for s, _, _ in plan]
        # bfloat16 autocast: ~1.4x faster encoding on AMX CPUs / GPUs; latents differ by ~5e-5 relative MSE,
        # well under the fp16 storage's own rounding.
        with torch.no_grad(), torch.autocast(module.device.type, torch.bfloat16, enabled=precision == "bfloat16"):
            windows = _to_video(np.stack([video[s:s + settings.frames] for s in starts]))
            lat = module.encode(windows.to(module.device, module.dtype)).float().cpu()
            singles = [video[last:last + 1] for _, last, _ in plan] + [video[ref:ref + 1] for _, _, ref in plan]
            single_lat = module.encode(_to_video(np.stack(singles)).to(module.device, module.dtype)).float().cpu()
        n = len(plan)
        for j, (s, last, ref) in enumerate(plan):
            tokens = audio_tokens_for_segment(feats, mel.feature_rate, fps, s, settings.frames, settings.audio_window,
                                              tf, audio_seconds=audio_seconds)
            pending["latents"].append(lat[j].to(store_dtype))
            pending["last_latent"].append(single_lat[j].to(store_dtype))
            pending["reference_latent"].append(single_lat[n + j].to(store_dtype))
            pending["audio"].append(tokens.float().to(store_dtype))
            pending["face"].append(face_mask(boxes, s, settings.frames, tf, lat.shape[-2:], video.shape[1:3])
                                   .to(store_dtype))
            pending_windows.append({"clip_id": clip.clip_id, "start": s, "last_frame": last, "reference_frame": ref,
                                    "caption": clip.window_caption(s, settings.frames)})
        if (i + 1) % clips_per_shard == 0:
            flush(i + 1)
            log(f"latent cache: {i + 1}/{len(clips)} clips, {time.monotonic() - started:.0f} s")
    else:
        i = len(clips)
    flush(i)
    if skipped:
        log(f"warning: latent cache skipped {len(skipped)} clip(s): {'; '.join(skipped[:10])}")
    n_windows = sum(len(s["windows"]) for s in manifest["shards"])
    if not n_windows:
        raise InputError(f"no usable training windows in {dataset_dir}: {'; '.join(skipped[:5])}")
    manifest["complete"] = True
    manifest["clips_used"] = i
    _write_json_atomic(cache_dir / MANIFEST_NAME, manifest)
    log(f"latent cache {cache_dir}: {n_windows} windows of {settings.frames} frames from {i} clips "
        f"({time.monotonic() - started:.0f} s this run)")
    return LatentCache.load(cache_dir)


class LatentBatches:
    """The contract's MMDiT batches from a latent cache, in a seeded order.

    `batch(step)` is a pure function of (seed, step, rank): each epoch is a fresh permutation of the
    windows, split between the ranks; a partial last batch is dropped (constant shapes). `iterate(start)`
    continues the order from any position (resume).
    """

    KEYS = ("latents", "last_latent", "reference_latent", "audio", "face")

    def __init__(self, cache: LatentCache, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1):
        missing = [k for k in self.KEYS if k not in cache.tensors]
        if missing:
            raise InputError(f"latent cache {cache.path} lacks {missing}; delete it and rebuild")
        per_epoch = len(cache) // (batch_size * world)
        if batch_size < 1 or per_epoch < 1:
            raise InputError(f"batch size {batch_size} x {world} process(es) exceeds the {len(cache)} cached "
                             "windows; lower --batch-size or cache more windows (--windows-per-clip)")
        self.cache, self.batch_size, self.seed = cache, int(batch_size), int(seed)
        self.rank, self.world, self.per_epoch = int(rank), int(world), per_epoch

    def indices(self, step: int) -> list[int]:
        epoch, k = divmod(int(step), self.per_epoch)
        order = np.random.default_rng([self.seed, epoch, 0xB47]).permutation(len(self.cache))
        start = (k * self.world + self.rank) * self.batch_size
        return [int(i) for i in order[start:start + self.batch_size]]

    def batch(self, step: int) -> dict:
        idx = self.indices(step)
        t = torch.tensor(idx, dtype=torch.long)
        out = {k: self.cache.tensors[k][t].float() for k in self.KEYS}
        out["captions"] = [self.cache.captions[i] for i in idx]
        out["clip_ids"] = [self.cache.clip_ids[i] for i in idx]
        return out

    def iterate(self, start: int = 0):
        step = int(start)
        while True:
            yield self.batch(step)
            step += 1
