"""SegmentChainer: a video of any length, rendered segment by segment (MotionFrames continuation).

Each segment after the first starts from the last `motion_frames` output frames of the previous
one: the uint8 frames that were emitted, re-encoded with the VAE as clean, pinned latents. Using the
emitted (quantised) frames rather than the float decode is deliberate: they are exactly what a
resumed run reads back from disk, so resumed and uninterrupted runs stay bit-identical.

Finished frames stream to a sink and are never accumulated (memory is about one segment plus the
motion frames, whatever the length). Each finished segment is saved to a work folder with a
manifest; a rerun with the same fingerprint resumes after the last finished segment.

Fingerprint policy: a work folder whose manifest has a DIFFERENT fingerprint holds another job.
By default (`on_mismatch="restart"`) its segment files are deleted and the job starts over, with a
warning that names what changed (changing a prompt or the seed and rerunning is the normal way to
iterate, and mixing segments of two jobs would be wrong). `on_mismatch="error"` raises instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import Cancelled, InputError
from ..sampling.conditioning import SegmentConditions
from ..sampling.denoise import noise_motion_latents, sample_segment
from .segments import Segment, plan_segments
from .settings import RenderSettings

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
MISMATCH_POLICIES = ("restart", "error")

FrameSink = Callable[[np.ndarray], None]


@dataclass
class SegmentReport:
    """What Reflection sees after a segment: where we are, the last frames, the current prompts."""

    index: int
    n_segments: int
    segments: list[Segment]
    last_frames: np.ndarray  # uint8 [k, H, W, 3], the last output frames so far
    prompts: list[str]  # one per segment; entries <= index are already rendered


# hook(report) -> a new full prompt list (only entries after report.index may change) or None.
ReflectionHook = Callable[[SegmentReport], "list[str] | None"]


@dataclass
class ChainProgress:
    """One progress event. `step` counts finished sampler steps over the whole video (of `total`)."""

    step: int
    total: int
    segment: int
    n_segments: int
    segment_step: int
    segment_steps: int
    latent: torch.Tensor | None = None  # x0 estimate of the running segment (latent preview)
    frames: np.ndarray | None = None  # uint8 frames the segment just added (set when it finishes)


@dataclass
class ChainResult:
    """What a run produced: frame count, the grid, the prompt used by each segment, resume counts."""

    n_frames: int
    segments: list[Segment]
    prompts: list[str]
    rendered_segments: int
    resumed_segments: int
    work_dir: Path | None = None


def segment_seed(seed: int, index: int) -> int:
    """Seed of segment `index`: a hash of (seed, index), so any segment can be re-rendered alone."""
    digest = hashlib.sha256(f"omnihuman-segment:{int(seed)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def fingerprint_hash(fingerprint: Any) -> str:
    """Stable hash of a JSON-able fingerprint."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def fingerprint_diff(old: Any, new: Any) -> list[str]:
    """Names of the fingerprint entries that differ (dotted paths)."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def check_prompts(prompts: Sequence[str], n_segments: int) -> list[str]:
    """One prompt per segment: a shorter list is an InputError naming both counts; extra entries are kept."""
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise InputError(
            f"prompts must be a list with one prompt per segment ({n_segments} here), got {type(prompts).__name__}"
        )
    prompts = list(prompts)
    if len(prompts) < n_segments:
        raise InputError(
            f"{len(prompts)} prompt(s) for {n_segments} segments: give one prompt per segment "
            "(use '' for no text), or re-plan the schedule for this audio length"
        )
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
    if bad:
        raise InputError(f"prompts must be strings; entries {bad} are not")
    return prompts


def frames_to_uint8(video: torch.Tensor) -> np.ndarray:
    """Core video `[1, 3, T, H, W]` in -1..1 -> uint8 `[T, H, W, 3]`."""
    v = ((video[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return v.permute(1, 2, 3, 0).contiguous().cpu().numpy()


def uint8_to_video(frames: np.ndarray) -> torch.Tensor:
    """uint8 `[T, H, W, 3]` -> core video `[1, 3, T, H, W]` float32 in -1..1."""
    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float()
    return (t / 127.5 - 1.0).unsqueeze(0)


def module_place(module, default_device) -> tuple[torch.device, torch.dtype]:
    p = next(iter(module.parameters()), None) if isinstance(module, torch.nn.Module) else None
    if p is None:
        return torch.device(default_device or "cpu"), torch.float32
    return p.device, p.dtype


def _atomic_write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


def _frames_digest(frames: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()


class WorkFolder:
    """The resume state on disk: manifest.json + one safetensors file of uint8 frames per segment."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.manifest_path = self.path / MANIFEST

    def read(self) -> dict | None:
        """The manifest, or None if there is none (or it is unreadable: then the job starts over)."""
        if not self.manifest_path.exists():
            return None
        try:
            data = json.loads(self.manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            log.warning("work folder %s: manifest unreadable (%s); starting over", self.path, e)
            return None
        return data if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT else None

    def write(self, manifest: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _atomic_write_json(self.manifest_path, manifest)

    def clear(self, manifest: dict | None) -> None:
        """Delete this job's files only (anything else in the folder is left alone)."""
        for entry in (manifest or {}).get("segments", []):
            (self.path / Path(str(entry.get("file", ""))).name).unlink(missing_ok=True)
        self.manifest_path.unlink(missing_ok=True)

    @staticmethod
    def segment_file(index: int) -> str:
        return f"segment_{index:04d}.safetensors"

    def save_frames(self, index: int, frames: np.ndarray) -> dict:
        from safetensors.torch import save_file

        self.path.mkdir(parents=True, exist_ok=True)
        name = self.segment_file(index)
        tmp = self.path / (name + ".tmp")
        save_file({"frames": torch.from_numpy(np.ascontiguousarray(frames))}, str(tmp))
        os.replace(tmp, self.path / name)
        return {"index": index, "file": name, "frames": int(frames.shape[0]), "sha256": _frames_digest(frames)}

    def load_frames(self, entry: dict) -> np.ndarray | None:
        """A finished segment's frames, or None if the file is missing or does not match its digest."""
        from safetensors.torch import load_file

        path = self.path / Path(str(entry.get("file", ""))).name
        try:
            frames = load_file(str(path))["frames"].numpy()
        except Exception:  # missing or truncated file: that segment is simply rendered again
            return None
        if frames.dtype != np.uint8 or _frames_digest(frames) != entry.get("sha256"):
            return None
        return frames


@dataclass
class _RunState:
    """Everything a run mutates; kept small on purpose (no frames except the motion tail)."""

    prompts: list[str]
    manifest: dict
    tail: np.ndarray | None = None  # last motion/report frames emitted so far, uint8 [k, H, W, 3]
    emitted: int = 0
    rendered: int = 0
    resumed: int = 0
    used_prompts: list[str] = field(default_factory=list)


class SegmentChainer:
    """Renders `n_frames` frames segment by segment with one prompt per segment (see module docstring)."""

    def __init__(self, model, vae, text_encoder, settings: RenderSettings | None = None, *, device=None,
                 dtype: torch.dtype | None = None):
        self.model, self.vae, self.text_encoder = model, vae, text_encoder
        self.settings = settings or RenderSettings()
        self.device, self.dtype = device, dtype
        self.temporal_factor = int(getattr(vae, "temporal_factor", 4))
        self.peak_frames_held = 0  # most video frames held in memory at once during the last run

    def plan(self, n_frames: int) -> list[Segment]:
        """The segment grid for `n_frames` output frames with these settings."""
        s = self.settings
        return plan_segments(n_frames, s.segment_frames, s.motion_frames, self.temporal_factor)

    # ---- the run -----------------------------------------------------------------------------------
    def run(
        self,
        n_frames: int,
        prompts: Sequence[str],
        *,
        reference_latent: torch.Tensor | None,
        audio_frames: torch.Tensor | None,
        seed: int,
        on_frames: FrameSink,
        work_dir: str | os.PathLike | None = None,
        fingerprint: dict | None = None,
        progress: Callable[[ChainProgress], None] | None = None,
        cancel: Callable[[], bool] | None = None,
        hook: ReflectionHook | None = None,
        on_mismatch: str = "restart",
    ) -> ChainResult:
        """Render and stream exactly `n_frames` uint8 frames to `on_frames`; resumes from `work_dir`.

        `audio_frames` `[n_frames, window, D]`: per-video-frame audio windows of the whole audio
        (computed once); each segment slices its own frames. `fingerprint`: JSON-able identity of
        the inputs the chainer cannot see (image / audio hashes, weights); settings, seed, frame
        count and prompts are added here.
        """
        s = self.settings
        segments = self.plan(n_frames)
        prompts = check_prompts(prompts, len(segments))
        if on_mismatch not in MISMATCH_POLICIES:
            raise InputError(f"on_mismatch must be one of {MISMATCH_POLICIES}, got {on_mismatch!r}")
        if s.reference_mode != "none" or s.first_frame_from_reference:
            if reference_latent is None:
                raise InputError(
                    f"reference_mode {s.reference_mode!r} / first_frame_from_reference need the reference latent"
                )
        if audio_frames is not None and (audio_frames.dim() != 3 or audio_frames.shape[0] < 1):
            raise InputError(f"audio_frames must be [n_frames, window, dim], got {tuple(audio_frames.shape)}")

        full_fp = {
            "format": MANIFEST_FORMAT,
            "inputs": fingerprint or {},
            "settings": s.to_dict(),
            "seed": int(seed),
            "n_frames": int(n_frames),
            "prompts": prompts[: len(segments)],
        }
        folder = WorkFolder(work_dir) if work_dir is not None else None
        manifest = self._open_manifest(folder, full_fp, segments, prompts, on_mismatch)
        state = _RunState(prompts=list(manifest["prompts"]), manifest=manifest)
        self.peak_frames_held = 0
        total = len(segments) * s.steps

        # 1. Re-emit finished segments (resume), rebuilding the motion tail from disk. A missing or
        #    damaged file ends the usable prefix: that segment and the ones after it render again.
        finished = []
        for i, entry in enumerate(list(manifest["segments"])):
            frames = folder.load_frames(entry) if entry.get("index") == i else None
            if frames is None:
                log.warning("work folder %s: segment %d is missing or damaged; rendering from there", folder.path, i)
                for stale in manifest["segments"][i:]:
                    (folder.path / Path(str(stale.get("file", ""))).name).unlink(missing_ok=True)
                manifest["segments"] = manifest["segments"][:i]
                folder.write(manifest)
                break
            self._emit(state, frames, on_frames)
            state.used_prompts.append(entry["prompt"])
            state.resumed += 1
            finished.append(entry)
            if progress is not None:
                progress(ChainProgress((i + 1) * s.steps, total, i, len(segments), s.steps, s.steps, frames=frames))
            del frames
        if finished and not finished[-1].get("reflected", True):
            # The run stopped between saving the segment and reflecting on it: reflect now.
            self._reflect(folder, state, segments, finished[-1]["index"], hook)

        # 2. Render the rest.
        for seg in segments[len(finished):]:
            if cancel is not None and cancel():
                raise self._cancelled(folder, seg.index, len(segments))
            try:
                frames = self._render(seg, segments, state, reference_latent, audio_frames, seed, total,
                                      progress, cancel)
            except Cancelled:
                raise self._cancelled(folder, seg.index, len(segments)) from None
            entry = {"prompt": state.prompts[seg.index], "seed": segment_seed(seed, seg.index),
                     "start": seg.start, "end": seg.end, "reflected": False}
            if folder is not None:
                entry.update(folder.save_frames(seg.index, frames))
                manifest["segments"].append(entry)
                folder.write(manifest)
            self._emit(state, frames, on_frames)
            state.used_prompts.append(entry["prompt"])
            state.rendered += 1
            if progress is not None:
                progress(ChainProgress((seg.index + 1) * s.steps, total, seg.index, len(segments),
                                       s.steps, s.steps, frames=frames))
            del frames
            self._reflect(folder, state, segments, seg.index, hook)

        if state.emitted != n_frames:  # the grid guarantees this; a failure here is a bug, not bad input
            raise AssertionError(f"chainer emitted {state.emitted} frames, expected {n_frames}")
        return ChainResult(n_frames, segments, state.used_prompts, state.rendered, state.resumed,
                           folder.path if folder is not None else None)

    # ---- pieces ------------------------------------------------------------------------------------
    def _open_manifest(self, folder, full_fp, segments, prompts, on_mismatch) -> dict:
        fresh = {
            "format": MANIFEST_FORMAT,
            "fingerprint": full_fp,
            "fingerprint_sha256": fingerprint_hash(full_fp),
            "grid": [[g.index, g.start, g.end, g.render_frames, g.motion_frames] for g in segments],
            "prompts": prompts,
            "segments": [],
        }
        if folder is None:
            return fresh
        old = folder.read()
        if old is not None and old.get("fingerprint_sha256") == fresh["fingerprint_sha256"]:
            if len(old.get("prompts", [])) >= len(segments):
                return old
        elif old is not None:
            changed = fingerprint_diff(old.get("fingerprint"), full_fp)
            message = (
                f"work folder {folder.path} holds segments of a different job (changed: "
                f"{', '.join(changed) or 'format'})"
            )
            if on_mismatch == "error":
                raise InputError(message + "; delete it, choose another work folder, or allow a restart")
            log.warning("%s; starting over and deleting its %d segment file(s)", message, len(old.get("segments", [])))
        folder.clear(old)
        folder.write(fresh)
        return fresh

    def _emit(self, state: _RunState, frames: np.ndarray, on_frames: FrameSink) -> None:
        """Send frames to the sink and keep only the tail that continuation and Reflection need."""
        on_frames(frames)
        state.emitted += frames.shape[0]
        keep = max(self.settings.motion_frames, 1)
        tail = frames if state.tail is None else np.concatenate([state.tail, frames[-keep:]])
        state.tail = np.ascontiguousarray(tail[-keep:])

    def _reflect(self, folder, state, segments, index, hook) -> None:
        """Let the hook revise the prompts of the segments after `index`; past ones must not change."""
        manifest = state.manifest
        if hook is not None and index < len(segments) - 1:
            report = SegmentReport(index, len(segments), list(segments), state.tail.copy(), list(state.prompts))
            new = hook(report)
            if new is not None:
                new = check_prompts(new, len(segments))
                changed = [i for i in range(index + 1) if new[i] != state.prompts[i]]
                if changed:
                    raise InputError(
                        f"Reflection after segment {index} changed the prompt(s) of already rendered "
                        f"segment(s) {changed}; only segments {index + 1}..{len(segments) - 1} can change"
                    )
                state.prompts = list(new)
                manifest["prompts"] = list(new)
        if manifest["segments"]:
            manifest["segments"][-1]["reflected"] = True
        if folder is not None:
            folder.write(manifest)

    def _cancelled(self, folder, index, n) -> Cancelled:
        kept = f"; {index} finished segment(s) are kept in {folder.path} and a rerun resumes" if folder else ""
        return Cancelled(f"cancelled at segment {index + 1} of {n}{kept}")

    def _render(self, seg, segments, state, reference_latent, audio_frames, seed, total, progress, cancel):
        """Sample, decode and trim one segment; returns the uint8 frames it adds to the output."""
        s = self.settings
        model_device, _ = module_place(self.model, self.device)
        device = torch.device(self.device) if self.device is not None else model_device
        vae_device, vae_dtype = module_place(self.vae, device)
        tf = self.temporal_factor
        n_latent = 1 + (seg.render_frames - 1) // tf

        motion = None
        if seg.index > 0 and seg.motion_frames:
            tail = state.tail[-seg.motion_frames:]
            video = uint8_to_video(tail).to(device=vae_device, dtype=vae_dtype)
            motion = self.vae.encode(video).to(device=device, dtype=torch.float32)
            del video
        elif seg.index == 0 and s.first_frame_from_reference:
            motion = reference_latent
        ref = reference_latent.to(device=device, dtype=torch.float32) if reference_latent is not None else None
        if motion is not None:
            motion = motion.to(device=device, dtype=torch.float32)
            # Drawn from the segment's seed, so a re-render or a resume is the same.
            motion = noise_motion_latents(motion, s.motion_noise, segment_seed(seed, seg.index))
        cond = SegmentConditions(n_latent, motion_latents=motion, reference_latent=ref,
                                 reference_mode=s.reference_mode, delta=s.delta)

        text, text_mask = self.text_encoder.encode([state.prompts[seg.index]], device=device)
        audio = self._segment_audio(audio_frames, seg)

        def on_step(step, steps, x0):
            if progress is not None:
                progress(ChainProgress(seg.index * s.steps + step, total, seg.index, len(segments), step, steps, latent=x0))

        latent = sample_segment(
            self.model, cond, text, text_mask, audio,
            steps=s.steps, shift=s.shift, guidance=s.guidance(), solver=s.solver,
            seed=segment_seed(seed, seg.index), callback=on_step, cancel=cancel,
            device=device, dtype=self.dtype,
        )
        video = self.vae.decode(latent.to(device=vae_device, dtype=vae_dtype))
        del latent
        self.peak_frames_held = max(self.peak_frames_held, video.shape[2] + len(state.tail if state.tail is not None else ()))
        frames = frames_to_uint8(video)
        del video
        # The first motion_frames decoded frames re-draw what the previous segment already emitted.
        return np.ascontiguousarray(frames[seg.new_start - seg.start: seg.end - seg.start])

    def _segment_audio(self, audio_frames, seg) -> torch.Tensor | None:
        """AudioBranch tokens `[1, t, 4, window * D]` for this segment's frames [start, start + render)."""
        if audio_frames is None:
            return None
        from ..audio.frames import pack_latent_frames

        part = audio_frames[seg.start: seg.start + seg.render_frames].float()
        if part.shape[0] < seg.render_frames:
            # Frames past the audio (the last segment's VAE padding) get the null audio condition.
            pad = part.new_zeros(seg.render_frames - part.shape[0], *audio_frames.shape[1:])
            part = torch.cat([part, pad])
        return pack_latent_frames(part, self.temporal_factor).unsqueeze(0)
