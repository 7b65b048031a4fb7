"""generate(): validation before model work, exact MP4 length with audio, and the real tiny presets."""

import math

import numpy as np
import pytest
import torch

from omnihuman_core.errors import InputError, WeightsError
from omnihuman_core.media import probe_video
from omnihuman_core.pipeline import RenderSettings, Renderer, generate

from .fakes import FakeAudioEncoder, FakeModel, FakeTextEncoder, FakeVAE

FPS = 8


def image(h=24, w=40):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 90)], -1).astype(np.uint8)


def speech(seconds, rate=16000):
    t = torch.arange(int(round(seconds * rate))) / rate
    return (0.3 * torch.sin(2 * math.pi * 220 * t) * (1 + torch.sin(2 * math.pi * 3 * t))), rate


def fake_renderer(**kw):
    base = dict(fps=FPS, segment_frames=17, motion_frames=5, steps=2, short_side=16, audio_window=5)
    return Renderer(FakeModel(record=False), FakeVAE(), FakeTextEncoder(), FakeAudioEncoder(),
                    settings=RenderSettings(**{**base, **kw}))


@pytest.mark.parametrize("frames", [1, 17, 18, 41])  # shorter than / exactly / one over a segment, 3 segments
def test_mp4_has_exactly_round_duration_times_fps_frames(tmp_path, frames):
    seconds = frames / FPS
    renderer = fake_renderer()
    out = tmp_path / "out.mp4"
    result = generate(renderer, image(), speech(seconds), "a person talks", out_path=out, seed=3)
    info = probe_video(out)
    assert result.frames == frames == info["frames"]
    assert (info["width"], info["height"]) == (result.width, result.height) == (24, 16)  # 40x24 at short side 16, sides multiples of 8
    assert info["fps"] == pytest.approx(FPS)
    assert result.duration == pytest.approx(frames / FPS)
    assert info["audio_duration"] == pytest.approx(frames / FPS, abs=0.07)
    assert len(result.segments) == max(1, math.ceil((frames - 5) / 12))
    assert result.prompts == ["a person talks"] * len(result.segments)
    assert result.work_dir is None and not (tmp_path / "out.mp4.work").exists()  # default work folder removed
    assert not (tmp_path / "out.partial.mp4").exists()


class Exploding(FakeModel):
    def forward(self, *a, **k):
        raise AssertionError("the model ran before validation finished")


@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(prompts=["a", "b"]), InputError, "2 prompt.*3 segments"),
        (dict(settings=dict(short_side=20)), InputError, "multiple of 8"),
        (dict(out_path="video.avi"), InputError, r"\.mp4"),
        (dict(audio=(torch.zeros(16000), 16000)), InputError, "silent"),
        (dict(audio="missing.wav"), InputError, "does not exist"),
        (dict(image="missing.png"), InputError, "does not exist"),
        (dict(settings=dict(audio_window=3)), WeightsError, "audio_window 3"),
        (dict(seed=1.5), InputError, "seed"),
    ],
)
def test_everything_is_validated_before_model_work(tmp_path, change, error, match):
    renderer = fake_renderer(**change.pop("settings", {}))
    renderer.model = Exploding(record=False)
    args = dict(image=image(), audio=speech(41 / FPS), prompts=None, out_path=tmp_path / "o.mp4", seed=0)
    args.update(change)
    if isinstance(args["out_path"], str):
        args["out_path"] = tmp_path / args["out_path"]
    with pytest.raises(error, match=match):
        generate(renderer, args.pop("image"), args.pop("audio"), args.pop("prompts"), **args)
    assert not renderer.vae.encoded_frames  # not even the reference image was encoded


def test_bad_settings_are_refused_on_construction():
    with pytest.raises(InputError, match="steps.*positive.*solver"):
        RenderSettings(steps=0, solver="rk4")
    with pytest.raises(InputError, match="segment_frames must be 1 \\+ 4k"):
        RenderSettings(segment_frames=120)


def test_resume_through_generate_and_kept_work_folder(tmp_path):
    calls = {"n": 0}

    def crash(p):
        if p.segment == 1 and p.latent is not None:
            raise KeyboardInterrupt

    work = tmp_path / "work"
    args = (image(), speech(41 / FPS), ["a", "b", "c"])
    with pytest.raises(KeyboardInterrupt):
        generate(fake_renderer(), *args, out_path=tmp_path / "x.mp4", work_dir=work, progress=crash)
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "x.partial.mp4").exists()
    renderer = fake_renderer()
    result = generate(renderer, *args, out_path=tmp_path / "x.mp4", work_dir=work,
                      progress=lambda p: calls.__setitem__("n", calls["n"] + 1))
    assert result.resumed_segments == 1 and renderer.model.calls == 2 * 2
    assert result.work_dir == work and (work / "manifest.json").exists()  # explicit work folders are kept
    assert probe_video(tmp_path / "x.mp4")["frames"] == 41


# ---- the real tiny components --------------------------------------------------------------------------
def _tiny_files(tmp_path):
    from omnihuman_core.model import MMDiT, MMDiTConfig
    from omnihuman_core.vae import CausalVAEConfig, CausalVideoVAE
    from omnihuman_core.weights import save_safetensors

    torch.manual_seed(0)
    model = MMDiT(MMDiTConfig.preset("tiny"))
    with torch.no_grad():  # random output layer, so the sampler really moves the latent
        for p in model.final.parameters():
            p.normal_(0, 0.05)
    vae = CausalVideoVAE(CausalVAEConfig.preset("tiny"))
    model_path = save_safetensors(tmp_path / "tiny.safetensors", model.state_dict(), "mmdit", model.config.to_dict())
    vae_path = save_safetensors(tmp_path / "vae.safetensors", vae.state_dict(), "vae", vae.config.to_dict())
    return model_path, vae_path


def test_generate_with_the_real_tiny_presets(tmp_path):
    from omnihuman_core.audio import MelEncoder

    model_path, vae_path = _tiny_files(tmp_path)
    settings = RenderSettings(fps=FPS, segment_frames=17, motion_frames=5, steps=2, short_side=16, audio_window=3)
    renderer = Renderer.from_files(model_path, vae_path, "builtin:tiny", "mel", settings=settings)
    args = (image(), speech(18 / FPS), ["she smiles", "she nods"])
    # mel (80 dims) x window 3 does not fit the tiny MMDiT's 24-dim audio tokens: said before any work.
    with pytest.raises(WeightsError, match="audio encoder gives 80-dim"):
        generate(renderer, *args, out_path=tmp_path / "bad.mp4")
    renderer.audio_encoder = MelEncoder(n_mels=8)  # 8 x 3 = 24
    renderer.identity["audio_encoder"] = "mel8"
    assert renderer.identity["model"].startswith("tiny.safetensors:")
    result = generate(renderer, *args, out_path=tmp_path / "tiny.mp4", seed=1, work_dir=tmp_path / "w")
    info = probe_video(tmp_path / "tiny.mp4")
    assert info["frames"] == result.frames == 18 and (info["width"], info["height"]) == (32, 16)
    assert len(result.segments) == 2

    # bf16 model weights: the sampler keeps its state in fp32 and casts model inputs.
    renderer16 = Renderer.from_files(model_path, vae_path, "builtin:tiny", "mel", settings=settings,
                                     dtype=torch.bfloat16, vae_dtype=torch.float32)
    renderer16.audio_encoder = MelEncoder(n_mels=8)
    result16 = generate(renderer16, image(), speech(5 / FPS), "hi", out_path=tmp_path / "tiny16.mp4", seed=1)
    assert probe_video(tmp_path / "tiny16.mp4")["frames"] == 5 == result16.frames
