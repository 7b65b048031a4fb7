"""System 1 nodes: one segment (Sampler) and the whole video from a schedule (Segment Chainer)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil

import torch

from omnihuman_core.errors import Cancelled, InputError

from . import _comfy
from .types import (AUDIO_FEATURES, MODEL, REFLECTION, SCHEDULE, audio_for_video, category, image_to_pil,
                    image_to_video, tensor_digest, uint8_into_image, uint8_to_pil, video_to_image)

log = logging.getLogger("omnihuman")

SEED_MAX = 0xFFFFFFFFFFFFFFFF
WORK_SUBFOLDER = ("omnihuman", "work")  # under ComfyUI's output folder
RESIZE_POLICY = ("Any size: it is resized to the model's resolution, short side = the model's short_side render "
                 "setting, both sides multiples of the model's pixel grid (16 for the demo model), aspect ratio "
                 "kept (the excess is centre-cropped).")
PREVIEW_MIN_SIDE = 256  # latent previews are a few cells wide; shown enlarged


def render_inputs():
    """The sampler widgets shared by Sampler and Segment Chainer; 0 / -1 = the model's own setting."""
    return {
        "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX,
                         "tooltip": "Seed of the noise. The Segment Chainer derives one seed per segment from it; "
                                    "the Sampler uses segment 0's, so it previews the chainer's first segment."}),
        "steps": ("INT", {"default": 0, "min": 0, "max": 200,
                          "tooltip": "Sampler steps; 0 = the model's own setting (its file's render defaults)."}),
        "shift": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 20.0, "step": 0.1,
                            "tooltip": "Flow shift (more time at high noise); 0 = the model's own setting."}),
        "text_scale": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 20.0, "step": 0.1,
                                 "tooltip": "Text guidance scale; -1 = the model's own setting."}),
        "audio_scale": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 20.0, "step": 0.1,
                                  "tooltip": "Audio guidance scale; -1 = the model's own setting."}),
        "delta": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 64.0, "step": 0.5,
                            "tooltip": "Latent frames between the clip's last frame and the pseudo last frame "
                                       "(the reference image); 0 = the model's own setting."}),
    }


def render_settings(model, steps, shift, text_scale, audio_scale, delta):
    """The model's render settings with the widgets that are not on "from model" applied (validated)."""
    from dataclasses import replace

    s = model.settings
    out = replace(s, steps=int(steps) if steps > 0 else s.steps, shift=float(shift) if shift > 0 else s.shift,
                  text_scale=float(text_scale) if text_scale >= 0 else s.text_scale,
                  audio_scale=float(audio_scale) if audio_scale >= 0 else s.audio_scale,
                  delta=float(delta) if delta > 0 else s.delta)
    out.validate()
    return out


def check_audio_fits(audio, model) -> None:
    s = model.settings
    if abs(audio.fps - s.fps) > 1e-6 or audio.window != s.audio_window:
        raise InputError(f"these audio features were made for {audio.fps:g} fps / window {audio.window}, the model "
                         f"renders {s.fps:g} fps / window {s.audio_window}; connect this model to the OmniHuman "
                         "Audio Encoder that feeds this node")


def reference(model, image, settings):
    """(PIL image, width, height, pixels [3, H, W] -1..1) of the reference at the render size."""
    from omnihuman_core.media import choose_size, fit_image

    pil = image_to_pil(image, "the reference image")
    width, height = choose_size(pil.width, pil.height, settings.short_side, model.spatial_multiple())
    model.vae.check_size(height, width)
    return pil, width, height, fit_image(pil, width, height)


class LatentPreview:
    """Previews of a latent in progress: a linear latent -> RGB map fitted on the reference image and its
    latent (least squares), applied to the newest latent frame. Cheap enough for every step."""

    def __init__(self, latent: torch.Tensor, pixels: torch.Tensor):
        lat = latent[0, :, 0].float().cpu()
        c, h, w = lat.shape
        rgb = torch.nn.functional.interpolate(pixels[None].float().cpu(), size=(h, w), mode="area")[0]
        x = torch.cat([lat.reshape(c, -1).T, torch.ones(h * w, 1)], 1)
        self.weights = torch.linalg.lstsq(x, rgb.reshape(3, -1).T).solution  # [C + 1, 3]

    def image(self, x0: torch.Tensor):
        lat = x0[0, :, -1].float().cpu()
        c, h, w = lat.shape
        rgb = torch.cat([lat.reshape(c, -1).T, torch.ones(h * w, 1)], 1) @ self.weights
        u8 = ((rgb.reshape(h, w, 3).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
        from PIL import Image

        scale = max(1, -(-PREVIEW_MIN_SIDE // max(h, w)))
        # Nearest: show the latent cells, not a blur of them.
        return uint8_to_pil(u8).resize((w * scale, h * scale), Image.Resampling.NEAREST)


class OmniHumanSampler:
    DESCRIPTION = ("Renders one segment (System 1): the character in the image speaking the audio's frames "
                   "[start_frame, start_frame + frames), conditioned on the prompt, with the image as the pseudo "
                   "last frame. Optional motion_frames continue an earlier segment. For whole videos use the "
                   "Segment Chainer.")
    CATEGORY = category("sampling")
    FUNCTION = "sample"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The frames this segment adds (without the motion frames it started from).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, {"tooltip": "The OmniHuman model."}),
                "image": ("IMAGE", {"tooltip": "The reference image (the first of a batch). " + RESIZE_POLICY}),
                "audio": (AUDIO_FEATURES, {"tooltip": "Audio features from the OmniHuman Audio Encoder."}),
                "prompt": ("STRING", {"default": "", "multiline": True,
                                      "tooltip": "What happens in this segment (empty = no text condition)."}),
                **render_inputs(),
                "frames": ("INT", {"default": 0, "min": 0, "max": 1025,
                                   "tooltip": "Frames to render, motion frames included; 0 = the model's segment "
                                              "length. Cut to the audio that is left."}),
                "start_frame": ("INT", {"default": 0, "min": 0, "max": 1_000_000,
                                        "tooltip": "The video frame of the audio where this segment starts."}),
            },
            "optional": {
                "motion_frames": ("IMAGE", {
                    "tooltip": "The last frames of the previous segment (1, 5, 9... frames at this render's size); "
                               "the segment starts from them. start_frame is then where they start."}),
            },
        }

    def sample(self, model, image, audio, prompt, seed, steps, shift, text_scale, audio_scale, delta, frames,
               start_frame, motion_frames=None):
        from omnihuman_core.audio import pack_latent_frames
        from omnihuman_core.pipeline import segment_seed, valid_frame_count
        from omnihuman_core.sampling import SegmentConditions, noise_motion_latents, sample_segment

        s = render_settings(model, steps, shift, text_scale, audio_scale, delta)
        check_audio_fits(audio, model)
        if start_frame >= audio.n_frames:
            raise InputError(f"start_frame {start_frame} is past the audio's last frame ({audio.n_frames - 1} at "
                             f"{s.fps:g} fps)")
        tf = int(model.vae.temporal_factor)
        n = min(int(frames) or s.segment_frames, audio.n_frames - start_frame)
        render = valid_frame_count(n, tf)
        _, width, height, pixels = reference(model, image, s)
        motion = None
        if motion_frames is not None:
            motion = image_to_video(motion_frames, "motion_frames")
            m = motion.shape[1]
            if (m - 1) % tf or m >= n:
                lower = 1 + (m - 1) // tf * tf
                raise InputError(f"motion_frames has {m} frames; it needs 1 + {tf}k frames (nearest: {lower}) and "
                                 f"fewer than the {n} frames rendered")
            if tuple(motion.shape[2:]) != (height, width):
                raise InputError(f"motion_frames are {motion.shape[3]}x{motion.shape[2]} px but this segment renders "
                                 f"at {width}x{height}; pass frames rendered from this image with this model")
        skip = 0 if motion is None else motion.shape[1]

        bar = _comfy.Progress(s.steps)
        with torch.inference_mode():
            ref = model.vae.encode(pixels[None, :, None]).float()
            if motion is not None:
                pinned = noise_motion_latents(model.vae.encode(motion[None]).float(), s.motion_noise,
                                              segment_seed(seed, 0))
            else:
                pinned = ref if s.first_frame_from_reference else None
            cond = SegmentConditions(1 + (render - 1) // tf, motion_latents=pinned, reference_latent=ref,
                                     reference_mode=s.reference_mode, delta=s.delta)
            text, mask = model.text_encoder.encode([prompt], device=model.device)
            part = audio.frames[start_frame:start_frame + render].float()
            if part.shape[0] < render:  # frames past the audio: the null audio condition
                part = torch.cat([part, part.new_zeros(render - part.shape[0], *part.shape[1:])])
            tokens = pack_latent_frames(part, tf).unsqueeze(0)
            preview = LatentPreview(ref, pixels) if _comfy.previews_enabled() else None

            def on_step(step, total, x0):
                bar.update(step, total, preview.image(x0) if preview is not None else None)

            try:
                latent = sample_segment(model.mmdit, cond, text, mask, tokens, steps=s.steps, shift=s.shift,
                                        guidance=s.guidance(), solver=s.solver, seed=segment_seed(seed, 0),
                                        callback=on_step, cancel=_comfy.interrupted, device=model.device,
                                        dtype=model.dtype)
            except Cancelled as e:
                _comfy.raise_interrupted(e)
            video = model.vae.decode(latent)[0, :, skip:n]
        return (video_to_image(video),)


class OmniHumanSegmentChainer:
    DESCRIPTION = ("Renders the whole video from a schedule (System 1): segment after segment, each continuing "
                   "from the last frames of the one before, one prompt per segment, with optional Reflection "
                   "between segments. One progress bar over all segments. Cancel keeps the finished segments in "
                   "ComfyUI/output/omnihuman/work/ and queueing again resumes from them. Connect the outputs to "
                   "Create Video -> Save Video.")
    CATEGORY = category("sampling")
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT", SCHEDULE)
    RETURN_NAMES = ("images", "audio", "fps", "schedule")
    OUTPUT_TOOLTIPS = ("The video's frames (exactly the audio's length).",
                       "The audio, cut to the video's length.",
                       "Frames per second (the model's), for Create Video.",
                       "The schedule as rendered: one shot per segment, with Reflection's revisions.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, {"tooltip": "The OmniHuman model."}),
                "image": ("IMAGE", {"tooltip": "The reference image (the first of a batch). " + RESIZE_POLICY}),
                "audio": (AUDIO_FEATURES, {"tooltip": "Audio features from the OmniHuman Audio Encoder; the video "
                                                      "is as long as this audio."}),
                "schedule": (SCHEDULE, {"tooltip": "The shots to render (Planner or Schedule Editor); checked "
                                                   "against the audio and snapped to the model's segments."}),
                **render_inputs(),
            },
            "optional": {
                "reflection": (REFLECTION, {"tooltip": "Re-plan the remaining shots after each segment (needs an "
                                                       "LLM)."}),
            },
        }

    def render(self, model, image, audio, schedule, seed, steps, shift, text_scale, audio_scale, delta,
               reflection=None):
        from omnihuman_core.pipeline import SegmentChainer, WorkFolder

        # ---- everything that can be wrong with the inputs, before any model runs ----------------------
        s = render_settings(model, steps, shift, text_scale, audio_scale, delta)
        check_audio_fits(audio, model)
        n_frames, duration = audio.n_frames, audio.duration
        chainer = SegmentChainer(model.mmdit, model.vae, model.text_encoder, s, device=model.device,
                                 dtype=model.dtype)
        segments = chainer.plan(n_frames)
        plan, notes = schedule.validate(duration).normalize(segments, s.fps, duration)
        for note in notes:
            log.info("OmniHuman Segment Chainer: schedule: %s", note)
        prompts = plan.segment_prompts(segments, s.fps)
        pil, width, height, pixels = reference(model, image, s)
        hook = self._reflection(reflection, plan, pil, s.fps)

        # ---- the conditions, the resume identity, the render ---------------------------------------------
        with torch.inference_mode():
            ref = model.vae.encode(pixels[None, :, None]).float()
        identity = {
            "image": tensor_digest(pixels), "audio_features": audio.digest or tensor_digest(audio.frames),
            "size": [width, height], "weights": model.identity, "dtype": str(model.dtype),
            # Floating point differs between device types; a resumed run must match bit for bit.
            "device": torch.device(model.device).type,
        }
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
        work = _comfy.output_dir().joinpath(*WORK_SUBFOLDER, key)

        images = torch.empty(n_frames, height, width, 3, dtype=torch.float32, device=_comfy.intermediate_device())
        written = [0]

        def sink(frames):
            uint8_into_image(images, written[0], frames)
            written[0] += frames.shape[0]

        bar = _comfy.Progress(len(segments) * s.steps)
        preview = LatentPreview(ref, pixels) if _comfy.previews_enabled() else None

        def on_progress(p):
            shown = None
            if p.frames is not None and len(p.frames):
                shown = uint8_to_pil(p.frames[-1])
            elif preview is not None and p.latent is not None:
                shown = preview.image(p.latent)
            bar.update(p.step, p.total, shown)

        try:
            with torch.inference_mode():
                result = chainer.run(n_frames, prompts, reference_latent=ref, audio_frames=audio.frames,
                                     seed=int(seed), on_frames=sink, work_dir=work, fingerprint=identity,
                                     progress=on_progress, cancel=_comfy.interrupted, hook=hook)
        except Cancelled as e:
            _comfy.raise_interrupted(e)
        if result.resumed_segments:
            log.info("OmniHuman Segment Chainer: resumed %d finished segment(s) from %s", result.resumed_segments, work)
        folder = WorkFolder(work)
        folder.clear(folder.read())  # done: the frames are in the output; keep nothing behind
        for empty in (work, work.parent):
            if empty.is_dir() and not any(empty.iterdir()):
                shutil.rmtree(empty, ignore_errors=True)

        rendered = plan.per_segment(segments, s.fps)
        if hook is not None and hook.schedule is not None:
            rendered = hook.schedule
        return (images, audio_for_video(audio.source, n_frames, s.fps), float(s.fps), rendered)

    @staticmethod
    def _reflection(settings, plan, pil, fps):
        """The chainer's Reflection hook (its endpoint checked now, before rendering), or None."""
        if settings is None or settings.llm is None:
            return None
        from omnihuman_core.agents import LLMClient, Reflection

        client = LLMClient(settings.llm)
        client.check_reachable()
        return Reflection(client, frames_to_send=settings.frames_to_send).hook(plan, pil, fps=fps,
                                                                                on_error=settings.on_error)
