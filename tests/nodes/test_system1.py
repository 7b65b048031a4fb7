"""System 1 nodes end to end on tiny models: loader, audio encoder, sampler, chainer, upscaler."""

import pytest
import torch

from omnihuman_core.errors import InputError

from .helpers import FPS, features, image, offline_schedule, speech


def test_loader_reads_the_models_and_their_render_settings(model):
    s = model.settings
    assert (s.fps, s.segment_frames, s.motion_frames, s.short_side, s.steps, s.audio_window) == (FPS, 13, 5, 16, 2, 1)
    assert model.config.latent_channels == model.vae.latent_channels == 4
    assert model.text_encoder.dim == model.config.text_dim
    assert model.identity["model"].startswith("mmdit.safetensors:")


def test_missing_model_file_names_the_folder_and_the_expected_files(nodes, model_folder):
    with pytest.raises(InputError) as e:
        nodes.OmniHumanModelLoader().load("demo/nothing.safetensors", "demo/vae.safetensors",
                                          "demo/text_encoder.safetensors", "auto")
    msg = str(e.value)
    assert "demo/nothing.safetensors" in msg and str(model_folder) in msg
    for name in ("demo/mmdit.safetensors", "demo/vae.safetensors", "demo/text_encoder.safetensors"):
        assert name in msg


def test_a_path_outside_the_model_folder_is_not_loaded(nodes, model_folder):
    with pytest.raises(InputError, match="not found"):
        nodes.OmniHumanModelLoader().load(str(model_folder / "demo" / "mmdit.safetensors"), "demo/vae.safetensors",
                                          "demo/text_encoder.safetensors", "auto")
    with pytest.raises(InputError, match="not found"):
        nodes.OmniHumanUpscalerLoader().load("../../etc/passwd")


def test_audio_features_are_aligned_to_the_models_frames(nodes, model):
    feats, audio = features(nodes, model, 2.5)
    assert feats.frames.shape == (20, 1, 80)  # round(2.5 s * 8 fps) frames, window 1, 80 mel bins
    assert feats.fps == FPS and feats.n_frames == 20 and feats.duration == pytest.approx(2.5)
    assert feats.source is audio and len(feats.digest) == 64


def test_an_audio_encoder_of_the_wrong_size_is_refused_before_encoding(nodes, model, monkeypatch):
    monkeypatch.setattr(model.settings, "audio_window", 5)  # mel 80 x 5 != the model's 80
    with pytest.raises(InputError, match="expects 80"):
        nodes.OmniHumanAudioEncoder().encode(speech(1.0), model, "mel (built-in)")


def test_audio_shorter_than_a_frame_is_refused(nodes, model):
    with pytest.raises(InputError, match="shorter than one frame"):
        nodes.OmniHumanAudioEncoder().encode(speech(0.03), model, "mel (built-in)")


def test_sampler_renders_one_segment_and_previews_the_chainers_first(nodes, model):
    feats, audio = features(nodes, model, 2.5)
    img = image()
    out = nodes.OmniHumanSampler().sample(model, img, feats, "hello", 7, 0, 0.0, -1.0, -1.0, 0.0, 0, 0)[0]
    # 40x24 at short side 16, sides multiples of 16 (VAE 8 px x patch 2): 32x16.
    assert out.shape == (13, 16, 32, 3) and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    schedule = offline_schedule(nodes, model, img, audio)
    chained = nodes.OmniHumanSegmentChainer().render(model, img, feats, _one_prompt(schedule, "hello"), 7, 0, 0.0,
                                                     -1.0, -1.0, 0.0)[0]
    u8 = lambda t: (t * 255).round().to(torch.uint8)  # noqa: E731 - the chainer stores frames as uint8
    assert torch.equal(u8(out), u8(chained[:13]))


def test_sampler_continues_from_motion_frames(nodes, model):
    feats, _ = features(nodes, model, 2.5)
    first = nodes.OmniHumanSampler().sample(model, image(), feats, "", 1, 0, 0.0, -1.0, -1.0, 0.0, 0, 0)[0]
    nxt = nodes.OmniHumanSampler().sample(model, image(), feats, "", 1, 0, 0.0, -1.0, -1.0, 0.0, 0, 8,
                                          motion_frames=first[-5:])[0]
    assert nxt.shape == (20 - 8 - 5, 16, 32, 3)  # frames 13..19: the audio that is left, minus the 5 motion frames
    with pytest.raises(InputError, match="1 \\+ 4k"):
        nodes.OmniHumanSampler().sample(model, image(), feats, "", 1, 0, 0.0, -1.0, -1.0, 0.0, 0, 8,
                                        motion_frames=first[-4:])
    with pytest.raises(InputError, match="renders at 32x16"):
        nodes.OmniHumanSampler().sample(model, image(), feats, "", 1, 0, 0.0, -1.0, -1.0, 0.0, 0, 8,
                                        motion_frames=torch.rand(5, 16, 16, 3))


def _one_prompt(schedule, prompt):
    from dataclasses import replace

    return replace(schedule, shots=[replace(s, prompt=prompt) for s in schedule.shots])


def test_chainer_renders_the_whole_audio_for_create_video(nodes, model):
    feats, audio = features(nodes, model, 3.5)  # 28 frames: 3 segments of the 13 / 5 grid
    schedule = offline_schedule(nodes, model, image(), audio)
    images, out_audio, fps, rendered = nodes.OmniHumanSegmentChainer().render(
        model, image(), feats, schedule, 3, 0, 0.0, -1.0, -1.0, 0.0)
    assert images.shape == (28, 16, 32, 3) and images.device.type == "cpu"
    assert fps == FPS and isinstance(fps, float)
    assert out_audio["sample_rate"] == 22050 and out_audio["waveform"].shape == (1, 2, round(28 / FPS * 22050))
    assert len(rendered.shots) == 3 and rendered.grid == {"segment_frames": 13, "motion_frames": 5}


def test_chainer_with_audio_shorter_than_one_segment(nodes, model):
    feats, audio = features(nodes, model, 0.6)  # 5 frames, less than a 13-frame segment
    schedule = offline_schedule(nodes, model, image(), audio)
    images, out_audio, fps, rendered = nodes.OmniHumanSegmentChainer().render(
        model, image(), feats, schedule, 0, 0, 0.0, -1.0, -1.0, 0.0)
    assert images.shape[0] == 5 and len(rendered.shots) == 1


def test_an_odd_image_size_is_resized_by_the_stated_policy(nodes, model, pack):
    feats, audio = features(nodes, model, 1.0)
    tall = image(h=61, w=37)  # portrait, sides no multiple of anything
    out = nodes.OmniHumanSampler().sample(model, tall, feats, "", 0, 0, 0.0, -1.0, -1.0, 0.0, 0, 0)[0]
    assert out.shape[1:] == (32, 16, 3)  # short side 16, long side 61/37*16 = 26.4 -> nearest multiple of 16
    tooltip = pack.NODE_CLASS_MAPPINGS["OmniHumanSampler"].INPUT_TYPES()["required"]["image"][1]["tooltip"]
    assert "short side" in tooltip and "multiples of" in tooltip and "centre-cropped" in tooltip


def test_schedule_for_other_audio_is_refused_before_rendering(nodes, model):
    feats, _ = features(nodes, model, 3.5)
    _, other = features(nodes, model, 1.0)
    schedule = offline_schedule(nodes, model, image(), other)
    with pytest.raises(InputError, match="planned for 1 s of audio but this audio is 3.5 s"):
        nodes.OmniHumanSegmentChainer().render(model, image(), feats, schedule, 0, 0, 0.0, -1.0, -1.0, 0.0)


def test_widgets_override_the_models_settings(nodes, model, comfy_shim, monkeypatch):
    feats, _ = features(nodes, model, 1.0)
    seen = []
    monkeypatch.setattr(comfy_shim, "FALLBACK_PROGRESS_HOOK", lambda v, t, p: seen.append((v, t, p)))
    nodes.OmniHumanSampler().sample(model, image(), feats, "", 0, 3, 4.0, 1.0, 1.0, 2.0, 5, 0)
    assert [v for v, t, p in seen] == [1, 2, 3] and seen[-1][1] == 3  # 3 steps instead of the model's 2
    assert all(p is not None and p.size[0] >= 256 for _, _, p in seen)  # a preview on every step


def test_upscaler_doubles_the_video(nodes, model):
    upscaler = nodes.OmniHumanUpscalerLoader().load("demo/upscaler.safetensors")[0]
    frames = torch.rand(5, 16, 32, 3)
    out = nodes.OmniHumanUpscaler().upscale(upscaler, frames, 0, 1, 0.0, 33, 8, 128, 16, model=model)[0]
    assert out.shape == (5, 32, 64, 3) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(InputError, match="needs the VAE"):
        nodes.OmniHumanUpscaler().upscale(upscaler, frames, 0, 1, 0.0, 33, 8, 128, 16)


def test_image_conversions_round_trip(pack):
    import sys

    types = sys.modules[f"{pack.__name__}.nodes.types"]
    img = torch.rand(3, 8, 12, 3)
    video = types.image_to_video(img)
    assert video.shape == (3, 3, 8, 12) and video.min() >= -1 and video.max() <= 1
    assert torch.allclose(types.video_to_image(video), img, atol=1e-6)
