"""The held-out benchmark: render test clips with a model, measure them and their ground truth (the ceiling).

`run_benchmark` (CLI `evaluate run`): for each clip of a split, the character's reference image speaks the
clip's audio with the clip's schedule (one prompt per segment, made from the clip's timed actions) or one
generic prompt, rendered by `pipeline.generate`; the same metrics on the clip's own video are the ceiling.
`run_drift` (`evaluate drift`): one long video from concatenated test audios, first vs last window.
`results_table` (`evaluate table`): the markdown ablation table from result files.
With a VAE and no MMDiT, `run_benchmark` also measures each clip passed through the VAE and back: the ceiling
of any MMDiT that renders through that VAE, which tells a weak VAE from a weak MMDiT.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from .metrics import (action_units, audio_mouth, frame_range, frechet_distance, hkv, identity_similarity, lip_sync, mean_of,
                      paired_bootstrap, ratio, relative_drop)

RESULTS_FORMAT = "omnihuman-eval"
RESULTS_VERSION = 1
GENERIC_PROMPT = "A character talks to the camera."  # the "without reasoning" ablation: no plan at all
PROMPT_MODES = ("schedule", "generic")
# Where the image the model is conditioned on comes from. neutral: the character's idle reference render (the
# benchmark). action_frame: a diagnostic oracle, the clip's own ground-truth frame in the middle of its longest
# non-idle action; a model that scores far better with it takes the action from the frame, not the prompt
# (BENCHMARKS.md, "Why the demo model ignores the action in its prompt"). Identity is still measured against
# the neutral reference either way.
REFERENCE_SOURCES = ("neutral", "action_frame")
# Targets for the full model on the held-out split (issue 5).
TARGETS = {"lip_sync_ratio": 0.60, "identity_ratio": 0.80, "action_accuracy": 0.70, "drift": 0.10}
FRAME_SLACK = 1  # a video may differ from its audio by this many frames (rounding)


# ------------------------------------------------------------------------------------------ clips


@dataclass
class EvalClip:
    """One clip of a dataset folder: video.mp4 + audio.wav + caption.txt, and meta.json when synthetic."""

    id: str
    dir: Path
    caption: str
    meta: dict | None

    @property
    def synthetic(self) -> bool:
        return self.meta is not None and "character" in self.meta

    def spec(self):
        from ..synth.character import CharacterSpec

        return CharacterSpec.from_dict(self.meta["character"])


def dataset_split(data_dir, split: str, clips: int | None = None, skip: int = 0) -> list[EvalClip]:
    """The clips of one split (index.json; without one, every sub-folder of DATA/SPLIT holding a video.mp4).

    `skip` leaves out the split's first clips: the benchmark reports the first 16 held-out clips, so settings
    (guidance, steps) are chosen on the clips after them (`--skip-clips 16`) and never on the reported ones.
    """
    data = Path(data_dir)
    if not data.is_dir():
        raise InputError(f"--data {data} is not a folder")
    if clips is not None and (isinstance(clips, bool) or int(clips) != clips or clips < 1):
        raise InputError(f"--clips must be a positive integer, got {clips!r}")
    if isinstance(skip, bool) or int(skip) != skip or skip < 0:
        raise InputError(f"--skip-clips must be 0 or a positive integer, got {skip!r}")
    if (data / "index.json").exists():
        from ..synth.dataset import read_index

        index = read_index(data)
        splits = index.get("splits", {})
        if split not in splits:
            raise InputError(f"{data}/index.json has no split '{split}' (it has: {', '.join(splits) or 'none'})")
        dirs = [data / e["path"] for e in splits[split]]
    else:
        root = data / split
        if not root.is_dir():
            raise InputError(f"{data} has no index.json and no '{split}' folder; expected DATA/{split}/<clip>/video.mp4")
        dirs = sorted(p.parent for p in root.glob("*/video.mp4"))
    if not dirs:
        raise InputError(f"the '{split}' split of {data} has no clips")
    if skip >= len(dirs):
        raise InputError(f"--skip-clips {skip} leaves nothing: the '{split}' split of {data} has {len(dirs)} clips")
    dirs = dirs[skip:]
    out = []
    for d in dirs[: clips or None]:
        for f in ("video.mp4", "audio.wav", "caption.txt"):
            if not (d / f).exists():
                raise InputError(f"clip {d} has no {f}; every clip needs video.mp4, audio.wav and caption.txt")
        meta = json.loads((d / "meta.json").read_text(encoding="utf-8")) if (d / "meta.json").exists() else None
        out.append(EvalClip(d.name, d, (d / "caption.txt").read_text(encoding="utf-8").strip(), meta))
    return out


def unavailable_notes(clips: list[EvalClip]) -> dict[str, str]:
    """What cannot be measured on these clips, and why (real data has no meta.json / labels.npz)."""
    notes = {}
    real = [c.id for c in clips if not c.synthetic]
    if real:
        notes["reference_image"] = (
            f"{len(real)} clip(s) have no meta.json (real data): there is no character spec to render a reference "
            "from, so the reference is the clip's first frame (identity then measures consistency with it)")
        unplanned = [c.id for c in clips if not c.synthetic and not (c.dir / "schedule.json").is_file()]
        if unplanned:
            notes["schedule"] = (
                f"{len(unplanned)} clip(s) have neither meta.json nor schedule.json, so no timed actions: the "
                "schedule is the caption for the whole clip, and a caption naming several actions is split evenly "
                "over the clip")
        notes["probe_accuracy"] = ("no labels.npz: the probes' own accuracy cannot be checked on this data; the "
                                   "probes were trained on the synthetic world and may misread real faces")
        notes["lip_sync_level"] = ("audio without meta.json is level-normalised to the synthetic speech level "
                                   "before its mouth track is computed")
    return notes


def clip_schedule(clip: EvalClip, fps: float, duration: float, spec=None):
    """The clip's plan as a `Schedule`: one shot per timed action, its prompt a caption of that action alone
    (`synth.action_schedule`, the same plan the dataset's schedule.json holds).

    Real clips (no meta.json): their schedule.json when they have one, else one shot covering the clip with
    its caption. `spec` (default: the clip's own character) is who the prompts describe.
    """
    from ..schedule import Schedule, Shot

    if not clip.synthetic or not clip.meta.get("actions"):
        if (clip.dir / "schedule.json").is_file():
            return Schedule.load(clip.dir / "schedule.json")
        return Schedule(fps=fps, duration=duration, shots=[Shot(0.0, duration, True, prompt=clip.caption)])
    from ..synth.world import action_schedule

    return action_schedule(spec or clip.spec(), clip.meta, fps, duration)


def segment_spans(schedule, segments, fps: float) -> list[tuple[float, float, str]]:
    """(start s, end s, prompt) of the time each generation segment adds, with the schedule's prompt for it."""
    prompts = schedule.segment_prompts(segments, fps)
    return [(*seg.time_span(fps), p) for seg, p in zip(segments, prompts)]


def reference_image(clip: EvalClip, gt_frames: np.ndarray | None = None):
    """The character's neutral reference render (synthetic), else the clip's first frame."""
    from PIL import Image

    if clip.synthetic:
        from ..synth.render import render_reference

        return render_reference(clip.spec(), int(clip.meta.get("size", 128)))
    if gt_frames is None:
        from ..media import read_video_frames

        gt_frames = read_video_frames(clip.dir / "video.mp4", 0, 1)
    return Image.fromarray(np.asarray(gt_frames[0]), "RGB")


def action_frame_index(clip: EvalClip) -> int | None:
    """The middle frame of the clip's longest run of one non-idle action (labels.npz `action`); None when the
    clip is idle throughout. Raises InputError when the clip has no per-frame action labels."""
    from ..synth.vocab import ACTIONS

    path = clip.dir / "labels.npz"
    action = None
    if path.is_file():
        with np.load(path) as z:
            action = np.asarray(z["action"]).astype(int) if "action" in z.files else None
    if action is None or action.size == 0:
        raise InputError(f"--reference-source action_frame needs per-frame action labels, and {clip.dir} has no "
                         "labels.npz 'action' (the synthetic world writes them); use --reference-source neutral")
    idle = ACTIONS.index("idle")
    best, best_len, start = None, 0, 0
    for i in range(1, action.size + 1):
        if i == action.size or action[i] != action[start]:
            if action[start] != idle and i - start > best_len:
                best, best_len = (start + i - 1) // 2, i - start
            start = i
    return best


def load_clip_audio(clip: EvalClip):
    from ..audio import load_audio

    return load_audio(clip.dir / "audio.wav", max_seconds=None, allow_silent=True)


# ---------------------------------------------------------------------------------------- metrics


def video_metrics(probes, frames: np.ndarray, waveform, fps: float, reference_embedding: np.ndarray,
                  spans: list[tuple[float, float, str]], *, normalize_audio: bool = False,
                  windows: list[tuple[str, float, float]] | None = None) -> dict:
    """All metrics of one video (uint8 [T, H, W, 3]) against its audio, reference and prompts.

    `windows`: extra (name, start s, end s) stretches to report identity and lip sync for (drift).
    """
    frames = np.asarray(frames)
    n = int(frames.shape[0]) if frames.ndim == 4 else 0
    wav = np.asarray(waveform.detach().cpu().numpy() if hasattr(waveform, "detach") else waveform, np.float32)
    n_audio = int(round(wav.size / 16000 * fps))
    if n == 0 or abs(n_audio - n) > FRAME_SLACK:
        raise InputError(f"the video has {n} frames ({n / fps:.2f} s at {fps:g} fps) but its audio is "
                         f"{wav.size / 16000:.2f} s ({n_audio} frames); they must be the same length")
    r = probes.read(frames)
    mouth_a = audio_mouth(wav, fps, n, normalize=normalize_audio)
    ls = lip_sync(r.mouth, mouth_a)
    ident = identity_similarity(r.identity, reference_embedding)
    units = action_units(r.action_probs, spans, fps)
    out = {
        "frames": n, "fps": fps,
        "lip_sync": ls["corr"], "lip_sync_offset": ls["offset"], "lip_sync_by_offset": ls["by_offset"],
        "identity": ident["mean"], "identity_min": ident["min"],
        "action_correct": sum(u["correct"] for u in units), "action_total": len(units), "actions": units,
        "hkv": hkv(r.hands, r.hands_visible),
    }
    out["tracks"] = {"video_mouth": r.mouth, "audio_mouth": mouth_a}  # for the chance level; not written out
    out["features"] = r.features  # for the Frechet probe distance over all clips; not written out
    for name, a_s, b_s in windows or []:
        a, b = frame_range(a_s, b_s, fps, n)
        out[name] = {"start": a, "end": b, "lip_sync": lip_sync(r.mouth[a:b], mouth_a[a:b])["corr"],
                     "identity": float(ident["per_frame"][a:b].mean()) if b > a else None}
    return out


def summarize(per_clip: list[dict]) -> dict:
    """Means over clips (lip sync over clips with speech only) and pooled action accuracy."""
    if not per_clip:
        return {}
    correct = sum(m["action_correct"] for m in per_clip)
    total = sum(m["action_total"] for m in per_clip)
    offsets = [m["lip_sync_offset"] for m in per_clip if m["lip_sync_offset"] is not None]
    return {
        "clips": len(per_clip),
        "lip_sync": mean_of(m["lip_sync"] for m in per_clip),
        "lip_sync_clips": sum(m["lip_sync"] is not None for m in per_clip),
        "lip_sync_offset": float(np.median(offsets)) if offsets else None,
        "lip_sync_offset_mean_abs": float(np.mean(np.abs(offsets))) if offsets else None,
        "identity": mean_of(m["identity"] for m in per_clip),
        "action_accuracy": correct / total if total else None,
        "action_units": total,
        "hkv": mean_of(m["hkv"] for m in per_clip),
    }


def chance_lip_sync(tracks: list[dict]) -> float | None:
    """Lip sync of each ground-truth video against the NEXT clip's audio: what a mouth that talks, but not
    to this audio, scores (the max over offsets makes it well above 0, about 0.25 on 5 s clips)."""
    vals = []
    speaking = [t for t in tracks if np.asarray(t["audio_mouth"]).std() > 1e-4]
    if len(speaking) < 2:
        return None
    for i, t in enumerate(speaking):
        other = speaking[(i + 1) % len(speaking)]["audio_mouth"]
        n = min(len(t["video_mouth"]), len(other))
        vals.append(lip_sync(t["video_mouth"][:n], other[:n])["corr"])
    return mean_of(vals)


def split_half_fd(gt_features: list[np.ndarray]) -> float | None:
    """Frechet probe distance between the ground truth of the even and the odd clips: how far two sets of real
    frames of this size lie apart (other characters, other actions), the floor a model's `fd` is read against."""
    if len(gt_features) < 2:
        return None
    return frechet_distance(np.concatenate(gt_features[0::2]), np.concatenate(gt_features[1::2]))


def ratios(model: dict, gt: dict) -> dict:
    return {k: ratio(model.get(k), gt.get(k)) for k in ("lip_sync", "identity", "action_accuracy", "hkv")}


# ------------------------------------------------------------------------------------------ setup


@dataclass
class ModelFiles:
    mmdit: Path
    vae: Path
    text_encoder: str
    audio_encoder: str = "mel"


def _check_out(out) -> Path:
    p = Path(out)
    if p.suffix.lower() != ".json":
        raise InputError(f"--out {p} must be a .json file")
    if p.is_dir():
        raise InputError(f"--out {p} is a folder; give a file name such as {p / 'results.json'}")
    p.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(p.parent, os.W_OK):
        raise InputError(f"cannot write {p}: its folder is not writable")
    return p


def _check_choices(prompts: str, reference_mode: str | None, reference_source: str = "neutral") -> None:
    from ..sampling.conditioning import REFERENCE_MODES

    if reference_source not in REFERENCE_SOURCES:
        raise InputError(f"--reference-source must be one of {', '.join(REFERENCE_SOURCES)}, got {reference_source!r}")

    if prompts not in PROMPT_MODES:
        raise InputError(f"--prompts must be one of {', '.join(PROMPT_MODES)}, got {prompts!r}")
    if reference_mode is not None and reference_mode not in REFERENCE_MODES:
        raise InputError(f"--reference-mode must be one of {', '.join(REFERENCE_MODES)}, got {reference_mode!r}")


def _check_guidance(model, text_scale, audio_scale, first_frame_from_reference=None, sampler=None) -> None:
    if model is None and (text_scale is not None or audio_scale is not None):
        raise InputError("--text-scale / --audio-scale set how a model renders; pass --mmdit too (the ground truth "
                         "and the VAE round trip have no guidance)")
    if model is None and any(v is not None for v in (sampler or {}).values()):
        raise InputError("--steps / --shift / --solver set how a model samples; pass --mmdit too")
    if model is None and first_frame_from_reference is not None:
        raise InputError("--first-frame-from-reference sets how a model renders; pass --mmdit too")


def _renderer(model: ModelFiles, *, steps, reference_mode, device, dtype, text_scale=None, audio_scale=None,
              first_frame_from_reference=None, shift=None, solver=None):
    from ..pipeline.generate import Renderer
    from ..pipeline.settings import RenderSettings

    for label, path in (("--mmdit", model.mmdit), ("--vae", model.vae)):
        if not Path(path).is_file():
            raise InputError(f"{label} {path} does not exist")
    settings = RenderSettings.for_model(model.mmdit, steps=steps, reference_mode=reference_mode,
                                        text_scale=text_scale, audio_scale=audio_scale, shift=shift, solver=solver,
                                        first_frame_from_reference=first_frame_from_reference)
    return Renderer.from_files(model.mmdit, model.vae, model.text_encoder, model.audio_encoder,
                               device=device, dtype=dtype, settings=settings)


def _render(renderer, image, audio, prompts, out_path: Path, seed: int) -> np.ndarray:
    from ..media import read_video_frames
    from ..pipeline.generate import generate

    generate(renderer, image, audio, prompts, out_path=out_path, seed=seed)
    return read_video_frames(out_path)


def _log(progress, msg):
    if progress:
        progress(msg)


def _settings_record(renderer, prompts: str, reference_mode) -> dict:
    if renderer is None:
        return {"prompts": prompts, "reference_mode": reference_mode}
    s = renderer.settings.to_dict()
    s["prompts"] = prompts
    return s


def _write(out: Path, result: dict) -> Path:
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=_json_default) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


# -------------------------------------------------------------------------------------------- run


def _load_vae(path, device=None, dtype=None):
    from ..vae import CausalVideoVAE
    from ..weights import load_into, load_safetensors

    path = Path(path)
    if not path.is_file():
        raise InputError(f"--vae {path} does not exist")
    state, config = load_safetensors(path, "vae")
    vae = CausalVideoVAE.from_config(config, device=device, dtype=dtype)
    load_into(vae, state, path)
    return vae.eval()


def vae_round_trip(vae, frames: np.ndarray, window: int = 33) -> np.ndarray:
    """uint8 frames [T, H, W, 3] encoded and decoded by `vae`, in independent windows of `window` frames.

    Windows, not the whole clip at once: the renderer also encodes and decodes segment by segment, and a
    minute of frames in one causal pass would not fit in memory. A short last window is padded to the VAE's
    1 + k * temporal frames with its last frame, and the padding dropped again.
    """
    import torch

    frames = np.asarray(frames)
    param = next(vae.parameters())
    tf = int(vae.temporal_factor)
    out = []
    with torch.no_grad():
        for a in range(0, frames.shape[0], window):
            chunk = frames[a:a + window]
            n = chunk.shape[0]
            padded = 1 + -(-(n - 1) // tf) * tf
            if padded > n:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], padded - n, 0)], 0)
            x = torch.from_numpy(chunk).to(param.device, torch.float32).permute(3, 0, 1, 2)[None] / 127.5 - 1
            y = vae.decode(vae.encode(x.to(param.dtype))).float().clamp(-1, 1)
            y = ((y[0].permute(1, 2, 3, 0) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
            out.append(y[:n])
    return np.concatenate(out, 0)


def run_benchmark(data_dir, *, split: str = "test", clips: int | None = None, probes_path=None,
                  model: ModelFiles | None = None, reference_mode: str | None = None, prompts: str = "schedule",
                  steps: int | None = None, text_scale: float | None = None,
                  audio_scale: float | None = None, seed: int = 0, device=None, dtype=None, work_dir=None,
                  out=None, label: str | None = None, progress: Callable[[str], None] | None = print,
                  vae=None, reference_source: str = "neutral", segment_frames: int | None = None,
                  first_frame_from_reference: bool | None = None, skip_clips: int = 0,
                  shift: float | None = None, solver: str | None = None) -> dict:
    """Render and measure `clips` clips of `split` (model=None: ground truth only). Writes `out` if given.

    `skip_clips`: start after the split's first clips (a validation slice; see dataset_split).

    `vae` (a .safetensors path, only without `model`): also measure every clip after a VAE round trip.
    `segment_frames` (only without `model`): the segments the actions are scored per, so that the ground truth
    and VAE rows are scored on the spans a model with those segments is (a model uses its own).
    `reference_source`: see REFERENCE_SOURCES (action_frame is a diagnostic, not the benchmark).
    """
    from ..pipeline.segments import plan_segments
    from ..pipeline.settings import RenderSettings
    from .probes import Probes, check_probe_file

    t0 = time.monotonic()
    _check_choices(prompts, reference_mode, reference_source)
    _check_guidance(model, text_scale, audio_scale, first_frame_from_reference,
                    {"steps": steps, "shift": shift, "solver": solver})
    out_path = _check_out(out) if out is not None else None
    check_probe_file(probes_path)
    if vae is not None and model is not None:
        raise InputError("--vae without --mmdit measures the VAE alone; with --mmdit the VAE is the model's own "
                         "(drop one of them)")
    if reference_source != "neutral" and model is None:
        raise InputError("--reference-source sets the image a model renders from; pass --mmdit too")
    if segment_frames is not None and model is not None:
        raise InputError("--segment-frames is for runs without --mmdit; a model is scored on its own segments")
    plain = RenderSettings(segment_frames=segment_frames) if segment_frames is not None else RenderSettings()
    eval_clips = dataset_split(data_dir, split, clips, skip_clips)
    # Before any rendering, so a clip without labels fails the run at once.
    oracle = {c.id: action_frame_index(c) for c in eval_clips} if reference_source == "action_frame" else {}
    probes = Probes.load(probes_path)
    vae_only = _load_vae(vae, device=device, dtype=dtype) if vae is not None else None
    renderer = _renderer(model, steps=steps, reference_mode=reference_mode, device=device, dtype=dtype,
                         text_scale=text_scale, audio_scale=audio_scale,
                         first_frame_from_reference=first_frame_from_reference, shift=shift, solver=solver) \
        if model is not None else None
    settings = renderer.settings if renderer is not None else plain
    temporal = int(renderer.vae.temporal_factor) if renderer is not None else 4
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="omnihuman-eval-"))
    work.mkdir(parents=True, exist_ok=True)

    from ..media import read_video_frames

    rows = []
    for i, clip in enumerate(eval_clips):
        sound = load_clip_audio(clip)
        duration = sound.duration
        gt_frames = read_video_frames(clip.dir / "video.mp4")
        gt_fps = float((clip.meta or {}).get("fps", settings.fps))
        n_frames = int(round(duration * settings.fps))
        segments = plan_segments(max(1, n_frames), settings.segment_frames, settings.motion_frames, temporal)
        schedule = clip_schedule(clip, settings.fps, duration)
        spans = segment_spans(schedule, segments, settings.fps)
        ref = reference_image(clip, gt_frames)
        ref_emb = probes.embed(ref)
        real_audio = not clip.synthetic
        row = {"id": clip.id, "caption": clip.caption, "prompts": [s[2] for s in spans] if prompts == "schedule"
               else [GENERIC_PROMPT]}
        if oracle.get(clip.id) is not None:
            from PIL import Image

            k = min(oracle[clip.id], len(gt_frames) - 1)
            row["reference_frame"] = k
            ref = Image.fromarray(np.asarray(gt_frames[k]), "RGB")
        row["gt"] = video_metrics(probes, gt_frames, sound.waveform, gt_fps, ref_emb, spans, normalize_audio=real_audio)
        if renderer is not None:
            render_prompts = [s[2] for s in spans] if prompts == "schedule" else GENERIC_PROMPT
            frames = _render(renderer, ref, sound, render_prompts, work / f"{clip.id}.mp4", seed)
            row["model"] = video_metrics(probes, frames, sound.waveform, settings.fps, ref_emb, spans,
                                         normalize_audio=real_audio)
        if vae_only is not None:
            row["vae"] = video_metrics(probes, vae_round_trip(vae_only, gt_frames, settings.segment_frames),
                                       sound.waveform, gt_fps, ref_emb, spans, normalize_audio=real_audio)
        rows.append(row)
        g = row["gt"]
        if "model" in row:
            m = row["model"]
            text = (f"lip sync {_fmt(m['lip_sync'])} (GT {_fmt(g['lip_sync'])}), identity {_fmt(m['identity'])} "
                    f"(GT {_fmt(g['identity'])}), actions {m['action_correct']}/{m['action_total']} "
                    f"(GT {g['action_correct']}/{g['action_total']})")
        else:
            text = (f"GT lip sync {_fmt(g['lip_sync'])}, identity {_fmt(g['identity'])}, "
                    f"actions {g['action_correct']}/{g['action_total']}")
        if "vae" in row:
            v = row["vae"]
            text += (f"; VAE round trip lip sync {_fmt(v['lip_sync'])}, identity {_fmt(v['identity'])}, "
                     f"actions {v['action_correct']}/{v['action_total']}")
        _log(progress, f"[{i + 1}/{len(eval_clips)}] {clip.id}: {text} ({time.monotonic() - t0:.0f} s)")
    floor = chance_lip_sync([r["gt"].pop("tracks") for r in rows])
    features = {k: [r[k].pop("features") for r in rows if k in r] for k in ("gt", "model", "vae")}
    for r in rows:
        r.get("model", {}).pop("tracks", None)
        r.get("vae", {}).pop("tracks", None)
    gt_sum = summarize([r["gt"] for r in rows])
    gt_sum["lip_sync_chance"] = floor
    gt_sum["fd_split_half"] = split_half_fd(features["gt"])
    model_sum = summarize([r["model"] for r in rows]) if renderer is not None else None
    vae_sum = summarize([r["vae"] for r in rows]) if vae_only is not None else None
    for s, key in ((model_sum, "model"), (vae_sum, "vae")):
        if s is not None:
            s["fd"] = frechet_distance(np.concatenate(features[key]), np.concatenate(features["gt"]))
    result = {
        "format": RESULTS_FORMAT, "version": RESULTS_VERSION, "kind": "run",
        "label": label or (Path(model.mmdit).stem if model else "ground truth"),
        "data": str(data_dir), "split": split, "skip_clips": skip_clips, "seed": seed,
        "model_files": {k: str(v) for k, v in vars(model).items()} if model else None,
        "settings": {**_settings_record(renderer, prompts, reference_mode), "reference_source": reference_source,
                     **({} if renderer is not None else {"segment_frames": settings.segment_frames,
                                                         "motion_frames": settings.motion_frames})},
        "probes": {"path": str(probes.path), "test": probes.report.get("test")},
        "summary": {"model": model_sum, "gt": gt_sum, "ratio": ratios(model_sum, gt_sum) if model_sum else None,
                    **({"vae": vae_sum, "vae_ratio": ratios(vae_sum, gt_sum), "vae_file": str(vae)} if vae_sum else {})},
        "targets": TARGETS, "unavailable": unavailable_notes(eval_clips),
        "seconds": round(time.monotonic() - t0, 1), "clips": rows,
    }
    if out_path is not None:
        _write(out_path, result)
    return result


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


# ------------------------------------------------------------------------------------------ drift


def drift_summary(m: dict) -> dict:
    first, last = m["first"], m["last"]
    d_id = relative_drop(first["identity"], last["identity"])
    d_ls = relative_drop(first["lip_sync"], last["lip_sync"])
    worst = max((d for d in (d_id, d_ls) if d is not None), default=None)
    return {"identity_first": first["identity"], "identity_last": last["identity"],
            "lip_sync_first": first["lip_sync"], "lip_sync_last": last["lip_sync"],
            "drift_identity": d_id, "drift_lip_sync": d_ls, "drift": worst}


def _mean_windows(metrics: list[dict]) -> dict:
    """{"first": ..., "last": ...}: each window's lip sync and identity averaged over the videos."""
    out = {}
    for name in ("first", "last"):
        out[name] = {}
        for key in ("lip_sync", "identity"):
            vals = [m[name][key] for m in metrics if m[name][key] is not None]
            out[name][key] = float(np.mean(vals)) if vals else None
    return out


def run_drift(data_dir, *, split: str = "test", seconds: float = 60.0, window: float = 10.0, videos: int = 1,
              probes_path=None,
              model: ModelFiles | None = None, reference_mode: str | None = None, prompts: str = "schedule",
              steps: int | None = None, text_scale: float | None = None,
              audio_scale: float | None = None, seed: int = 0, device=None, dtype=None, work_dir=None, out=None,
              label: str | None = None, progress: Callable[[str], None] | None = print,
              first_frame_from_reference: bool | None = None, shift: float | None = None,
              solver: str | None = None) -> dict:
    """`videos` videos of `seconds` each: a held-out character (video v: the split's v-th) speaking held-out
    audios back to back, the last `window` seconds repeating the first ones.

    Identity and lip sync in the first and the last `window` seconds, for the model's video and for a
    ground-truth render of the same character, actions and audio (the ceiling, ~0 drift), averaged over
    the videos.
    """
    import torch

    from ..audio import Audio
    from ..pipeline.segments import plan_segments
    from ..pipeline.settings import RenderSettings
    from ..schedule import Schedule, Shot
    from ..synth.render import render_clip, render_reference
    from ..synth.speech import mouth_track
    from .probes import Probes, check_probe_file

    t0 = time.monotonic()
    _check_choices(prompts, reference_mode)
    _check_guidance(model, text_scale, audio_scale, first_frame_from_reference,
                    {"steps": steps, "shift": shift, "solver": solver})
    if not (isinstance(seconds, (int, float)) and isinstance(window, (int, float)) and 0 < 2 * window <= seconds):
        raise InputError(f"--seconds ({seconds!r}) must be at least twice --window ({window!r}), both positive")
    if isinstance(videos, bool) or not isinstance(videos, int) or videos < 1:
        raise InputError(f"--videos must be a positive integer, got {videos!r}")
    out_path = _check_out(out) if out is not None else None
    check_probe_file(probes_path)
    pool = [c for c in dataset_split(data_dir, split) if c.synthetic]
    if not pool:
        raise InputError(f"the '{split}' split of {data_dir} has no synthetic clips (meta.json): the drift test "
                         "renders its ground truth from a character spec, which real data does not have")
    probes = Probes.load(probes_path)
    renderer = _renderer(model, steps=steps, reference_mode=reference_mode, device=device, dtype=dtype,
                         text_scale=text_scale, audio_scale=audio_scale,
                         first_frame_from_reference=first_frame_from_reference, shift=shift, solver=solver) \
        if model is not None else None
    settings = renderer.settings if renderer is not None else RenderSettings()
    fps = settings.fps
    n_samples = int(round(seconds * 16000))

    speaking = [c for c in pool if np.abs(load_clip_audio(c).waveform.numpy()).max() > 10 ** (-40 / 20)] or pool

    def one_video(v: int) -> dict:
        # Audios of clips with speech, back to back, until `seconds - window` (reused if the split is short).
        pieces, used, total, k = [], [], 0, 2 * v  # each video starts two sentences further on
        body = n_samples - int(round(window * 16000))
        while total < body:
            clip = speaking[k % len(speaking)]
            wav = load_clip_audio(clip).waveform.numpy()
            pieces.append((clip, total, wav[: body - total]))
            used.append(clip.id)
            total += min(wav.size, body - total)
            k += 1
        # The last window repeats the first one's audio, actions and prompts. Lip sync differs a lot from one
        # sentence to the next (0.0 to 0.7 across the demo's held-out clips), so with different audio in the two
        # windows the comparison measured which sentences fell where as much as what the chaining did.
        n_body = len(pieces)
        for clip, _, wav in list(pieces):
            if total >= n_samples:
                break
            piece = wav[: n_samples - total]
            pieces.append((clip, total, piece))
            used.append(clip.id)
            total += piece.size
        waveform = np.concatenate([w for _, _, w in pieces]).astype(np.float32)
        n_frames = int(round(waveform.size / 16000 * fps))
        character = pool[v % len(pool)]
        spec = character.spec()
        size = int(character.meta.get("size", 128))

        # Schedule: every piece's timed actions, described for this character.
        shots = []
        for clip, start, wav in pieces:
            dur = wav.size / 16000
            sub = clip_schedule(clip, fps, dur, spec=spec)
            shots += [Shot(start / 16000 + s.start, start / 16000 + s.end, s.speaking, prompt=s.prompt) for s in sub.shots]
        schedule = Schedule(fps=fps, duration=waveform.size / 16000, shots=shots)
        temporal = int(renderer.vae.temporal_factor) if renderer is not None else 4
        segments = plan_segments(n_frames, settings.segment_frames, settings.motion_frames, temporal)
        spans = segment_spans(schedule, segments, fps)
        windows = [("first", 0.0, window), ("last", waveform.size / 16000 - window, waveform.size / 16000)]

        # Ground truth: each piece rendered with its own actions, emotion and camera, then joined.
        gt_parts = []
        mouth = mouth_track(waveform, fps, n_frames)
        for clip, start, wav in pieces[:n_body]:
            a0 = int(round(start / 16000 * fps))
            a1 = int(round((start + wav.size) / 16000 * fps))
            if a1 <= a0:
                continue
            m = mouth[a0:a1]
            src_fps = float(clip.meta.get("fps", fps))
            acts = [(name, int(round(a / src_fps * fps)), min(len(m), int(round(b / src_fps * fps))))
                    for name, a, b in clip.meta["actions"]]
            acts = [(nm, a, b) for nm, a, b in acts if b > a] or ["idle"]
            frames, _ = render_clip(spec, acts, clip.meta.get("emotion", "neutral"), clip.meta.get("camera", "static"),
                                    m, fps, size, seed=int(clip.meta.get("seed", 0)) + 1)
            gt_parts.append(frames)
        gt_frames = np.concatenate(gt_parts)
        # The repeated last window: the opening's own frames (a clip cut short renders its camera move and
        # actions over the shorter length, so rendering the cut pieces again would not be the same video).
        gt_frames = np.concatenate([gt_frames, gt_frames[: n_frames - gt_frames.shape[0]]])[:n_frames]
        ref = render_reference(spec, size)
        ref_emb = probes.embed(ref)
        _log(progress, f"drift video {v + 1}/{videos}: {waveform.size / 16000:.1f} s from {len(pieces)} clips, "
             f"character of {character.id}")
        gt = video_metrics(probes, gt_frames, waveform, fps, ref_emb, spans, windows=windows)
        gt.pop("tracks")
        model_m = None
        if renderer is not None:
            work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="omnihuman-drift-"))
            work.mkdir(parents=True, exist_ok=True)
            render_prompts = [s[2] for s in spans] if prompts == "schedule" else GENERIC_PROMPT
            audio = Audio(torch.from_numpy(waveform), 16000, 1)
            frames = _render(renderer, ref, audio, render_prompts, work / (f"drift_{int(seconds)}s.mp4" if v == 0 else f"drift_{int(seconds)}s_{v}.mp4"), seed)
            model_m = video_metrics(probes, frames, waveform, fps, ref_emb, spans, windows=windows)
            model_m.pop("tracks")
        return {"character": character.id, "clips_used": used, "gt": gt, "model": model_m}

    runs = [one_video(v) for v in range(videos)]
    gt_mean = _mean_windows([r["gt"] for r in runs])
    model_mean = _mean_windows([r["model"] for r in runs]) if renderer is not None else None
    used, character, gt, model_m = runs[0]["clips_used"], pool[0], runs[0]["gt"], runs[0]["model"]
    result = {
        "format": RESULTS_FORMAT, "version": RESULTS_VERSION, "kind": "drift",
        "label": label or (Path(model.mmdit).stem if model else "ground truth"),
        "data": str(data_dir), "split": split, "seconds": seconds, "window": window,
        "last_window": "repeats_first", "seed": seed,
        "clips_used": used, "character": character.id, "videos": len(runs),
        "per_video": [{"character": r["character"], "clips_used": r["clips_used"],
                       "summary": {"model": drift_summary(r["model"]) if r["model"] else None,
                                   "gt": drift_summary(r["gt"])}} for r in runs],
        "model_files": {k: str(v) for k, v in vars(model).items()} if model else None,
        "settings": _settings_record(renderer, prompts, reference_mode),
        # Over all the videos: each window's numbers averaged, then the drop between them.
        "summary": {"model": drift_summary(model_mean) if model_mean else None, "gt": drift_summary(gt_mean)},
        "metrics": {"model": model_m, "gt": gt},  # the first video's in full
        "targets": TARGETS,
        "elapsed_seconds": round(time.monotonic() - t0, 1),
    }
    if out_path is not None:
        _write(out_path, result)
    return result


# ------------------------------------------------------------------------------------------ table


def load_results(path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"results file {p} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{p} is not a JSON results file") from None
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        raise InputError(f"{p} is not an `evaluate run` / `evaluate drift` results file")
    return data


# What must agree for two `evaluate run` files to be one run over more clips. Not the data folder's path: a
# dataset written again by seed on another machine is the same data (each file's path is kept in merged_from).
_MERGE_SAME = ("kind", "version", "split", "seed", "model_files", "settings")


def merge_results(paths, out=None, label: str | None = None) -> dict:
    """One `evaluate run` results file from several over disjoint clips of one model and settings.

    On a 2-core machine a split is rendered in sittings (`--skip-clips`, `--clips`); merged, the clips are one
    sample again and every mean, action count and ratio is recomputed from the clips. The Frechet distances
    need the frames' probe features, which results files do not keep: they become None (render all clips in
    one run for FD). The chance lip sync is the clip-weighted mean of the files' own (each is the mean over
    its clips of a mouth against another clip's audio; weighted, it is the mean over all those pairs).
    """
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise InputError("evaluate merge needs at least two results files")
    out_path = _check_out(out) if out is not None else None
    runs = [load_results(p) for p in paths]
    first = runs[0]
    for p, r in zip(paths, runs):
        if r["kind"] != "run":
            raise InputError(f"{p} is an `evaluate {r['kind']}` file; only `evaluate run` files are merged")
        for key in _MERGE_SAME:
            if r.get(key) != first.get(key):
                raise InputError(f"{p} and {paths[0]} differ in {key!r} ({r.get(key)!r} against {first.get(key)!r}); "
                                 "only runs of one model with the same settings on one split are merged")
        if r["probes"].get("test") != first["probes"].get("test"):  # their test accuracy, not where they lay
            raise InputError(f"{p} and {paths[0]} were scored by different probes; rescore one with the other's")
    owner: dict[str, Path] = {}
    for p, r in zip(paths, runs):
        for c in r["clips"]:
            if c["id"] in owner:
                raise InputError(f"clip {c['id']} is in both {owner[c['id']]} and {p}; merge runs over disjoint "
                                 "clips (--skip-clips / --clips slices)")
            owner[c["id"]] = p
    labels = {r["label"] for r in runs}
    if label is None and len(labels) > 1:
        raise InputError(f"the files are labelled {', '.join(sorted(labels))}; name the merged run with --label")
    clips = [c for r in runs for c in r["clips"]]
    summary: dict = {}
    for key in ("model", "gt", "vae"):
        if all(r["summary"].get(key) for r in runs):
            summary[key] = summarize([c[key] for c in clips])
            if key != "gt":  # the ground truth's FD is fd_split_half, set below
                summary[key]["fd"] = None
        elif any(r["summary"].get(key) for r in runs):
            raise InputError(f"only some of the files hold {key!r} numbers; merge runs made the same way")
    weighted = [(r["summary"]["gt"].get("lip_sync_chance"), r["summary"]["gt"].get("lip_sync_clips") or 0)
                for r in runs]
    summary["gt"]["lip_sync_chance"] = (sum(v * n for v, n in weighted) / sum(n for _, n in weighted)
                                        if all(v is not None for v, _ in weighted) and sum(n for _, n in weighted)
                                        else None)
    summary["gt"]["fd_split_half"] = None
    summary["ratio"] = ratios(summary["model"], summary["gt"]) if "model" in summary else None
    if "vae" in summary:
        summary["vae_ratio"] = ratios(summary["vae"], summary["gt"])
        summary["vae_file"] = first["summary"].get("vae_file")
    unavailable = {k: v for r in runs for k, v in r.get("unavailable", {}).items()}
    unavailable["fd"] = ("merged from runs over separate clips: the Frechet distances need every frame's probe "
                         "features, which results files do not keep; render all clips in one `evaluate run` for FD")
    result = {**{k: first[k] for k in ("format", "version", "kind", "data", "split", "seed", "model_files",
                                        "settings", "probes", "targets")},
              "label": label or first["label"], "skip_clips": None,
              "merged_from": [{"file": str(p), "label": r["label"], "data": r["data"], "skip_clips": r.get("skip_clips"),
                               "clips": len(r["clips"])} for p, r in zip(paths, runs)],
              "summary": summary, "unavailable": unavailable,
              "seconds": round(sum(r.get("seconds") or 0 for r in runs), 1), "clips": clips}
    if out_path is not None:
        _write(out_path, result)
    return result


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.0f} %"


def _num(v, digits=3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _rows_by_label(paths) -> dict[str, dict]:
    """{label: {kind: results}} in the order given; two files of one kind under one label are refused (one
    would silently replace the other in the table)."""
    rows: dict[str, dict] = {}
    seen: dict[tuple[str, str], Path] = {}
    for p in paths:
        r = load_results(p)
        key = (r["label"], r["kind"])
        if key in seen:
            raise InputError(f"{seen[key]} and {p} are both `evaluate {r['kind']}` results labelled {r['label']!r}; "
                             "leave one out, or rerun one with another --label")
        seen[key] = Path(p)
        rows.setdefault(r["label"], {})[r["kind"]] = r
    return rows


def results_table(paths) -> str:
    """Markdown ablation table: one row per label (run and drift files with the same label share a row)."""
    rows = _rows_by_label(paths)
    gt_run = next((x["run"] for x in rows.values() if "run" in x), None)
    lines = [
        "| model | prompts | reference | lip sync corr | % of GT | offset | identity | % of GT | action acc "
        "| HKV | % of GT | FD | drift |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| *target (full model)* | | | | >= {TARGETS['lip_sync_ratio']:.0%} | | | >= {TARGETS['identity_ratio']:.0%} "
        f"| >= {TARGETS['action_accuracy']:.0%} | | | | < {TARGETS['drift']:.0%} |".replace("%", " %"),
    ]
    if gt_run is not None:
        g = gt_run["summary"]["gt"]
        lines.append(f"| ground truth (ceiling) | | | {_num(g['lip_sync'])} | 100 % | {_num(g['lip_sync_offset'], 0)} "
                     f"| {_num(g['identity'])} | 100 % | {_pct(g['action_accuracy'])} | {_num(g['hkv'], 1)} | 100 % | "
                     f"{_num(g.get('fd_split_half'), 1)} (split half) | {_drift_cell(next((x['drift'] for x in rows.values() if 'drift' in x), None), 'gt')} |")
    vae_run = next((x["run"] for x in rows.values() if x.get("run") and x["run"]["summary"].get("vae")), None)
    if vae_run is not None:
        v, q = vae_run["summary"]["vae"], vae_run["summary"]["vae_ratio"]
        lines.append(f"| VAE round trip (ceiling through the VAE) | | | {_num(v['lip_sync'])} | {_pct(q['lip_sync'])} "
                     f"| {_num(v['lip_sync_offset'], 0)} | {_num(v['identity'])} | {_pct(q['identity'])} "
                     f"| {_pct(v['action_accuracy'])} | {_num(v['hkv'], 1)} | {_pct(q['hkv'])} | {_num(v.get('fd'), 1)} | – |")
    for label, row in rows.items():
        run, drift = row.get("run"), row.get("drift")
        settings = (run or drift)["settings"]
        m = (run or {}).get("summary", {}).get("model") or {}
        q = (run or {}).get("summary", {}).get("ratio") or {}
        if run is not None and not m:
            continue  # ground-truth-only file: its numbers are the ceiling row
        lines.append(
            f"| {label} | {settings.get('prompts', '–')} | {settings.get('reference_mode', '–')} "
            f"| {_num(m.get('lip_sync'))} | {_pct(q.get('lip_sync'))} | {_num(m.get('lip_sync_offset'), 0)} "
            f"| {_num(m.get('identity'))} | {_pct(q.get('identity'))} | {_pct(m.get('action_accuracy'))} "
            f"| {_num(m.get('hkv'), 1)} | {_pct(q.get('hkv'))} | {_num(m.get('fd'), 1)} | {_drift_cell(drift, 'model')} |")
    n = {r['summary']['gt']['clips'] for x in rows.values() for r in [x.get('run')] if r}
    chance = (gt_run or {}).get("summary", {}).get("gt", {}).get("lip_sync_chance")
    drifts = {(x["drift"]["seconds"], x["drift"]["window"]) for x in rows.values() if "drift" in x}
    drift_text = ", ".join(f"the first vs the last {w:g} s of a {s:g} s video" for s, w in sorted(drifts)) or "–"
    lines.append("")
    lines.append(f"Clips per run: {', '.join(str(v) for v in sorted(n)) or '–'}. Lip sync: max Pearson correlation over "
                 f"offsets -5..5 frames (chance, a talking mouth against other audio: {_num(chance)}); identity: mean "
                 f"cosine to the reference; FD: Frechet distance of the frame probe's features to the ground truth's "
                 f"(lower is better; the ground truth's row: its even vs its odd clips); drift: worst relative drop of "
                 f"identity or lip sync, {drift_text} "
                 "(docs/EVALUATION.md).")
    return "\n".join(lines) + "\n"


# (metric, column title, decimals) of the paired comparison; higher is better for each.
_PAIRED = (("lip_sync", "lip sync", 3), ("hkv", "HKV", 1), ("identity", "identity", 3), ("action_accuracy", "actions", 2))


def paired_table(paths, against: str, level: float = 0.9) -> str:
    """Each row minus the row `against`, clip by clip on the clips both rendered, with a bootstrap interval.

    A table of 16 clips cannot tell a difference of 0.01 from the clips it happened to draw; this says which
    differences the sample does resolve. "leads" means the whole interval lies on one side of 0.
    """
    runs = {label: x["run"] for label, x in _rows_by_label(paths).items()
            if "run" in x and x["run"]["summary"].get("model")}
    if against not in runs:
        raise InputError(f"--against {against!r} names no row with a model run among the results; "
                         f"rows: {', '.join(sorted(runs)) or 'none'}")
    base = {c["id"]: c["model"] for c in runs[against]["clips"] if c.get("model")}
    lines = [f"Paired against `{against}`: mean of the per-clip difference (row minus {against}) on the clips both "
             f"rendered, {level:.0%} bootstrap interval over clips in brackets; a row leads or trails where its "
             "interval excludes 0, otherwise the sample cannot separate the two.".replace("%", " %"), "",
             "| model | clips | " + " | ".join(f"{title} diff" for _, title, _ in _PAIRED)
             + f" | {against} leads on lip sync and HKV |",
             "|---|---|" + "---|" * len(_PAIRED) + "---|"]
    for label, run in runs.items():
        if label == against:
            continue
        rows = [(base[c["id"]], c["model"]) for c in run["clips"] if c.get("model") and c["id"] in base]
        cells, verdict = [], {}
        for key, _, digits in _PAIRED:
            if key == "action_accuracy":
                pairs = [(m["action_correct"] - b["action_correct"], b["action_total"]) for b, m in rows
                         if b["action_total"] == m["action_total"]]
                num, den = [x for x, _ in pairs], [y for _, y in pairs]
            else:
                num = [m[key] - b[key] for b, m in rows if m.get(key) is not None and b.get(key) is not None]
                den = None
            if not num or (den is not None and sum(den) == 0):
                cells.append("–")
                continue
            mean, lo, hi = paired_bootstrap(np.array(num), None if den is None else np.array(den), level=level)
            verdict[key] = "row" if lo > 0 else against if hi < 0 else "tie"
            cells.append(f"{mean:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]")
        lip, motion = verdict.get("lip_sync"), verdict.get("hkv")
        if lip is None or motion is None:
            answer = "– (no paired lip sync or HKV)"
        elif lip == against and motion == against:
            answer = "yes"
        else:
            said = {against: "trails", "row": "leads", "tie": "ties"}
            answer = f"no: this row {said[lip]} on lip sync, {said[motion]} on HKV"
        lines.append(f"| {label} | {len(rows)} | " + " | ".join(cells) + f" | {answer} |")
    return "\n".join(lines) + "\n"


def _drift_cell(drift: dict | None, which: str) -> str:
    if drift is None:
        return "–"
    s = (drift.get("summary") or {}).get(which)
    if not s or s.get("drift") is None:
        return "–"
    return f"{100 * s['drift']:+.1f} %"
