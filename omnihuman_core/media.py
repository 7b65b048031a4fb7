"""Images in, videos out: the reference image's loading and resize policy, and the MP4 writer/reader.

Images: any Pillow format, EXIF orientation honoured, transparency composited over mid grey,
decompression bombs refused before decoding. Video: H.264 + AAC via PyAV (bundled FFmpeg), written
frame by frame so memory does not grow with the video's length.
"""

from __future__ import annotations

import math
import os
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

MAX_SIDE = 8192  # refuse images with a longer side (decompression-bomb guard)
MAX_PIXELS = 50_000_000  # ... or with more pixels than this
WORK_MAX_SIDE = 4096  # larger images are accepted but downscaled to this long side on load
# Transparent areas become mid grey: neutral in colour and exposure (white or black would skew the
# model's lighting), and 128 maps to ~0 in the -1..1 range the model sees.
BACKGROUND = (128, 128, 128)
DEFAULT_CRF = 18  # visually lossless-ish H.264; lower = larger files
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


# --------------------------------------------------------------------------------------- images


def _check_dimensions(w: int, h: int, what: str) -> None:
    if w < 1 or h < 1:
        raise InputError(f"{what} has no pixels ({w}x{h}); give a real picture of the character")
    if max(w, h) > MAX_SIDE or w * h > MAX_PIXELS:
        raise InputError(
            f"{what} is {w}x{h} px ({w * h / 1e6:.0f} Mpx); images over {MAX_SIDE} px a side or "
            f"{MAX_PIXELS / 1e6:.0f} Mpx are refused (decompression-bomb guard). Downscale it first, "
            f"e.g. to {WORK_MAX_SIDE} px on the long side"
        )


def _to_8bit(img: Image.Image) -> Image.Image:
    """High-bit-depth and float grayscale to 8-bit "L" by scaling, not clipping (Pillow's convert clips)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(img).astype(np.float64)
        top = 255.0 if a.max(initial=0) <= 255 else 65535.0 if a.max() <= 65535 else float(a.max())
        return Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "F":
        a = np.nan_to_num(np.asarray(img, dtype=np.float64))
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(a * scale + 0.5, 0, 255).astype(np.uint8), "L")
    return img


def _to_rgb(img: Image.Image, background=BACKGROUND) -> Image.Image:
    """Any mode -> RGB; transparency (alpha, palette or tRNS) composited over `background`."""
    img = _to_8bit(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    if img.mode == "1":
        img = img.convert("L")
    return img.convert("RGB")


def _downscale(img: Image.Image, max_side: int) -> Image.Image:
    w, h = img.size
    if max(w, h) <= max_side:
        return img
    s = max_side / max(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)


def load_image(path, *, max_side: int = WORK_MAX_SIDE, background=BACKGROUND) -> Image.Image:
    """Open an image as RGB: EXIF-rotated, transparency over mid grey, downscaled to `max_side`.

    Refuses missing/empty/corrupt/non-image files and images over 8192 px a side or 50 Mpx.
    """
    p = Path(path)
    what = f"image '{p}'"
    if not p.exists():
        raise InputError(f"{what} does not exist; check the path (relative paths start at {os.getcwd()})")
    if p.is_dir():
        raise InputError(f"{what} is a folder; give the path of an image file inside it")
    if p.stat().st_size == 0:
        raise InputError(f"{what} is empty (0 bytes); the export or download probably failed")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(p)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(
            f"{what} declares a huge size and is refused (decompression-bomb guard); downscale it "
            f"to at most {MAX_SIDE} px a side"
        ) from None
    except UnidentifiedImageError:
        raise InputError(
            f"{what} is not an image Pillow can read; give a PNG, JPEG, WebP, BMP or TIFF picture"
        ) from None
    except OSError as e:
        raise InputError(f"{what} cannot be opened ({e})") from None
    with img:
        _check_dimensions(img.width, img.height, what)  # from the header: nothing decoded yet
        try:
            if img.format == "JPEG" and max(img.size) > 2 * max_side:
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: far less memory for huge photos.
                img.draft("RGB", (img.width * max_side // max(img.size),
                                  img.height * max_side // max(img.size)))
            img.load()
            out = ImageOps.exif_transpose(img)
            out = _to_rgb(out, background)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise InputError(
                f"{what} could not be decoded ({e}); the file is corrupt or truncated. Re-save it "
                f"as PNG or JPEG"
            ) from None
    return _downscale(out, max_side)


def image_from_array(array, *, value_range=(0.0, 1.0), max_side: int = WORK_MAX_SIDE,
                     background=BACKGROUND) -> Image.Image:
    """An in-memory image (numpy/torch; HWC, CHW, HW, or ComfyUI's [1, H, W, C]) as RGB PIL.

    uint8 and uint16 are scaled from their full range; float data must lie in `value_range`
    (ComfyUI IMAGE: 0..1; core video tensors: pass (-1, 1)).
    """
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        array = array.float().numpy() if array.dtype in (torch.bfloat16, torch.float16) else array.numpy()
    if isinstance(array, Image.Image):
        return _downscale(_to_rgb(array, background), max_side)
    if not isinstance(array, np.ndarray):
        raise InputError(f"image must be a numpy array, torch tensor or PIL image, got {type(array).__name__}")
    a = array
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise InputError(f"image batch has {a.shape[0]} images (shape {a.shape}); pass one image")
        a = a[0]
    if a.ndim == 3 and a.shape[-1] not in (1, 2, 3, 4) and a.shape[0] in (1, 2, 3, 4):
        a = np.moveaxis(a, 0, -1)  # CHW (torch style) -> HWC
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (2, 3, 4)):
        raise InputError(
            f"image array has shape {array.shape}; expected [H, W], [H, W, 3|4], [3|4, H, W] or [1, H, W, 3]"
        )
    _check_dimensions(a.shape[1], a.shape[0], "image array")
    if a.dtype == np.uint8:
        u8 = a
    elif a.dtype == np.uint16:
        u8 = (a.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise InputError("image array has NaN/inf values; the upstream node produced a broken image")
        lo, hi = value_range
        if a.min() < lo - 1e-3 or a.max() > hi + 1e-3:
            raise InputError(
                f"image array values span {a.min():.3g}..{a.max():.3g}, outside value_range "
                f"{lo:g}..{hi:g}; pass value_range=(-1, 1) for core video tensors or (0, 255) for 8-bit data"
            )
        u8 = (np.clip((a.astype(np.float32) - lo) / (hi - lo), 0, 1) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise InputError(f"image array has dtype {a.dtype}; expected uint8, uint16 or float")
    img = Image.fromarray(np.ascontiguousarray(u8))  # infers L / LA / RGB / RGBA from the shape
    return _downscale(_to_rgb(img, background), max_side)


def _check_size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer number of pixels, got {value!r}")
    return int(value)


def fit_image(image, width: int, height: int, *, device=None, dtype=None) -> torch.Tensor:
    """Resize policy: scale to COVER `width` x `height`, then centre-crop; returns `[3, H, W]` in -1..1.

    The character stays centred, the aspect ratio is kept and nothing is stretched; only the
    overflowing edges of the longer side are cut. Lanczos filter (sharp, low aliasing).
    """
    width, height = _check_size("width", width), _check_size("height", height)
    if not isinstance(image, Image.Image):
        image = load_image(image) if isinstance(image, (str, os.PathLike)) else image_from_array(image)
    if image.mode != "RGB":
        image = _to_rgb(image)
    w, h = image.size
    scale = max(width / w, height / h)
    # Crop box in source pixels (fractional): resizing from the box in one pass avoids a second
    # resample and keeps the centre exact.
    cw, ch = width / scale, height / scale
    left, top = (w - cw) / 2, (h - ch) / 2
    out = image.resize((width, height), Image.Resampling.LANCZOS, box=(left, top, left + cw, top + ch))
    t = torch.from_numpy(np.asarray(out, dtype=np.uint8).copy()).permute(2, 0, 1)
    t = t.to(device=device, dtype=torch.float32) / 127.5 - 1.0
    return t.to(dtype or torch.float32)


def choose_size(image_w: int, image_h: int, short_side: int, multiple: int = 16) -> tuple[int, int]:
    """Output (W, H) with the image's aspect ratio, short side = `short_side`, both multiples of `multiple`."""
    image_w, image_h = _check_size("image width", image_w), _check_size("image height", image_h)
    short_side, multiple = _check_size("short_side", short_side), _check_size("multiple", multiple)
    if short_side % multiple:
        lower = max(multiple, short_side // multiple * multiple)
        raise InputError(
            f"short side {short_side} px is not a multiple of {multiple}; use {lower} or {lower + multiple}"
        )
    long_side = max(multiple, round(short_side * max(image_w, image_h) / min(image_w, image_h) / multiple) * multiple)
    return (long_side, short_side) if image_w >= image_h else (short_side, long_side)


# --------------------------------------------------------------------------------------- video


def _fps_fraction(fps) -> Fraction:
    try:
        f = float(fps)
    except (TypeError, ValueError):
        f = float("nan")
    if not math.isfinite(f) or not 0 < f <= 240:
        raise InputError(f"fps must be a number in (0, 240], got {fps!r}")
    return Fraction(f).limit_denominator(1001)


def _prepare_audio(audio, audio_rate):
    """Audio for muxing: (float32 [C, N] with C in 1..2, AAC-compatible rate) or None."""
    if audio is None:
        return None, None
    if hasattr(audio, "waveform") and hasattr(audio, "sample_rate"):  # audio.io.Audio
        audio, audio_rate = audio.waveform, audio.sample_rate
    elif isinstance(audio, (tuple, list)) and len(audio) == 2:
        audio, audio_rate = audio
    elif isinstance(audio, dict) and "waveform" in audio:  # ComfyUI AUDIO
        audio, audio_rate = audio["waveform"], audio["sample_rate"]
    if audio_rate is None:
        raise InputError("VideoWriter audio needs its sample rate: pass audio_rate= or an (waveform, rate) pair")
    t = torch.as_tensor(audio).detach().float().cpu()
    if t.dim() == 3 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 1:
        t = t.unsqueeze(0)
    if t.dim() != 2:
        raise InputError(f"VideoWriter audio must be [samples] or [channels, samples], got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise InputError("VideoWriter audio has NaN/inf samples")
    if t.shape[0] > 2:
        t = t.mean(0, keepdim=True)
    rate = int(audio_rate)
    if rate <= 0:
        raise InputError(f"VideoWriter audio_rate must be positive, got {audio_rate!r}")
    if rate not in AAC_RATES:
        import torchaudio.functional as AF

        t, rate = AF.resample(t, rate, 48000), 48000
    return t.clamp(-1.0, 1.0).numpy(), rate


class VideoWriter:
    """Streaming MP4 writer: H.264 (yuv420p) video + optional AAC audio, frames encoded as they come.

    `close()` muxes the audio trimmed or zero-padded to exactly the video's duration. Use as a
    context manager. Audio: an `Audio`, a `(waveform, rate)` pair, ComfyUI AUDIO, or a waveform
    with `audio_rate`.
    """

    def __init__(self, path, fps: float, width: int, height: int, audio=None, audio_rate=None,
                 crf: int = DEFAULT_CRF, preset: str = "medium", faststart: bool = True):
        import av

        self.path = Path(path)
        self.rate = _fps_fraction(fps)
        self.fps = float(fps)
        self.width, self.height = _check_size("width", width), _check_size("height", height)
        if self.width % 2 or self.height % 2:
            raise InputError(
                f"video size {self.width}x{self.height}: H.264 (yuv420p) needs even width and height; "
                f"use {self.width // 2 * 2 or 2}x{self.height // 2 * 2 or 2}"
            )
        if preset not in X264_PRESETS:
            raise InputError(f"preset must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
        if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= 51:
            raise InputError(f"crf must be an integer in 0..51 (lower = better quality), got {crf!r}")
        self._audio, self._audio_rate = _prepare_audio(audio, audio_rate)
        self._check_output()

        opts = {"movflags": "+faststart"} if faststart else {}
        try:
            self._container = av.open(str(self.path), mode="w", container_options=opts)
        except (av.error.FFmpegError, ValueError) as e:
            raise InputError(f"cannot create video '{self.path}' ({e}); use a .mp4 file name") from None
        try:
            self._setup_streams(crf, preset)
        except Exception:
            self._container.close()
            raise
        self.frames_written = 0
        self._reformatter = None
        self._audio_pos = 0
        self._closed = False

    def _setup_streams(self, crf, preset) -> None:
        self._video = self._container.add_stream("libx264", rate=self.rate)
        self._video.width, self._video.height = self.width, self.height
        self._video.pix_fmt = "yuv420p"
        # BT.709 conversion *and* tags: untagged HD H.264 is read as BT.709 by players but swscale
        # converts with BT.601 by default, which shifts colours (skin tones) slightly.
        self._video.options = {"crf": str(int(crf)), "preset": preset,
                               "x264-params": "colorprim=bt709:transfer=bt709:colormatrix=bt709"}
        self._video.codec_context.time_base = 1 / self.rate
        self._audio_stream = None
        if self._audio is not None:
            layout = "stereo" if self._audio.shape[0] == 2 else "mono"
            self._audio_stream = self._container.add_stream("aac", rate=self._audio_rate, layout=layout)

    def _check_output(self) -> None:
        parent = self.path.parent
        if self.path.is_dir():
            raise InputError(f"output '{self.path}' is a folder; give a file name such as {self.path / 'out.mp4'}")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot write video to '{self.path}': folder '{parent}' cannot be created ({e.strerror})") from None
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(f"cannot write video to '{self.path}': folder '{parent}' is not writable; choose another output folder")

    def write(self, frames) -> None:
        """Encode frames now: uint8 `[n, H, W, 3]` or `[H, W, 3]`, numpy or torch. Nothing is buffered."""
        if self._closed:
            raise InputError(f"VideoWriter for '{self.path}' is closed; open a new one to write more frames")
        if isinstance(frames, torch.Tensor):
            frames = frames.detach().cpu().numpy()
        if not isinstance(frames, np.ndarray):
            raise InputError(f"frames must be a uint8 numpy array or torch tensor, got {type(frames).__name__}")
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8:
            raise InputError(
                f"frames must be uint8 0..255, got {frames.dtype}; convert with "
                f"((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8) for -1..1 video"
            )
        if frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3):
            raise InputError(
                f"frames have shape {frames.shape}; this writer expects [n, {self.height}, {self.width}, 3]"
            )
        import av
        from av.video.reformatter import VideoReformatter

        # One reformatter for the whole video: `frame.reformat` builds a new swscale context per frame,
        # which cost ~5 ms a frame at 128 px (most of a synthetic clip's write time); the output is identical.
        if self._reformatter is None:
            self._reformatter = VideoReformatter()
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame = self._reformatter.reformat(frame, format="yuv420p", dst_colorspace="ITU709")
            frame.pts = self.frames_written
            self._container.mux(self._video.encode(frame))
            self.frames_written += 1
        # Keep the audio abreast of the video so the muxer can interleave without holding packets.
        self._write_audio(int(self.frames_written * self._audio_rate / self.rate) if self._audio_stream else 0)

    def _write_audio(self, until: int) -> None:
        if self._audio_stream is None or until <= self._audio_pos:
            return
        import av

        n_ch, n = self._audio.shape
        chunk = self._audio[:, self._audio_pos:min(until, n)]
        if chunk.shape[1] < until - self._audio_pos:  # past the audio's end: silence
            chunk = np.concatenate([chunk, np.zeros((n_ch, until - self._audio_pos - chunk.shape[1]), np.float32)], 1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk, dtype=np.float32), format="fltp",
                                           layout="stereo" if n_ch == 2 else "mono")
        frame.sample_rate = self._audio_rate
        frame.pts = self._audio_pos
        frame.time_base = Fraction(1, self._audio_rate)
        self._container.mux(self._audio_stream.encode(frame))
        self._audio_pos = until

    def close(self) -> None:
        """Flush the encoders, add the audio up to exactly frames / fps seconds, finish the file."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.frames_written:
                self._container.mux(self._video.encode(None))
                if self._audio_stream is not None:
                    self._write_audio(round(self.frames_written * self._audio_rate / self.rate))
                    self._container.mux(self._audio_stream.encode(None))
        finally:
            self._container.close()
        if not self.frames_written:
            self.path.unlink(missing_ok=True)  # an MP4 without frames is unplayable; leave nothing
            raise InputError(f"no frames were written to '{self.path}'; nothing to save")

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            try:  # keep what was written (finished work is kept), but do not mask the real error
                self.close()
            except Exception:
                pass


def _open_input(path, what="video"):
    import av

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} '{p}' does not exist (or is not a file); check the path")
    if p.stat().st_size == 0:
        raise InputError(f"{what} '{p}' is empty (0 bytes)")
    try:
        return av.open(str(p))
    except (av.error.FFmpegError, ValueError) as e:
        raise InputError(f"{what} '{p}' cannot be read ({e}); it is corrupt or not a video") from None


def probe_video(path) -> dict:
    """Facts about a video file: frames, fps, width, height, duration (s), codecs, audio_duration (s)."""
    with _open_input(path) as c:
        if not c.streams.video:
            raise InputError(f"'{path}' has no video stream")
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        info = {
            "fps": float(v.average_rate or v.guessed_rate or 0),
            "width": v.codec_context.width,
            "height": v.codec_context.height,
            "video_codec": v.codec_context.name,
            "audio_codec": a.codec_context.name if a else None,
            "audio_rate": a.rate if a else None,
            "audio_duration": float(a.duration * a.time_base) if a is not None and a.duration else None,
        }
        # Count packets rather than trusting the header (some containers leave it 0); no decoding.
        info["frames"] = sum(1 for pkt in c.demux(v) if pkt.size)
        info["duration"] = (float(v.duration * v.time_base) if v.duration
                            else info["frames"] / info["fps"] if info["fps"] else None)
    return info


def read_video_frames(path, start: int = 0, count: int | None = None) -> np.ndarray:
    """Decode frames `[start, start + count)` (all by default) as uint8 RGB `[T, H, W, 3]`."""
    from av.video.reformatter import VideoReformatter

    frames = []
    reformatter = VideoReformatter()  # one swscale context for the clip (to_ndarray makes one per frame)
    with _open_input(path) as c:
        if not c.streams.video:
            raise InputError(f"'{path}' has no video stream")
        v = c.streams.video[0]
        v.thread_type = "AUTO"
        for i, frame in enumerate(c.decode(v)):
            if i < start:
                continue
            if count is not None and len(frames) >= count:
                break
            frames.append(reformatter.reformat(frame, format="rgb24").to_ndarray())
    if not frames:
        raise InputError(f"'{path}' has no frames at index {start} or later")
    return np.stack(frames)


def read_video_audio(path, max_seconds: float | None = None):
    """The sound track of a video as `Audio` (mono 16 kHz); silence allowed, no length limit by default."""
    from .audio.io import load_audio

    return load_audio(path, max_seconds=max_seconds, allow_silent=True)
