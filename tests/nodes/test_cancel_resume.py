"""Cancel in the middle of a segment keeps the finished segments; queueing again resumes from them."""

import logging

import pytest
import torch

from omnihuman_core.errors import Cancelled

from .helpers import features, image, offline_schedule


def run(nodes, model, feats, schedule, seed=5):
    return nodes.OmniHumanSegmentChainer().render(model, image(), feats, schedule, seed, 0, 0.0, -1.0, -1.0, 0.0)


def test_cancel_mid_segment_keeps_finished_segments_and_a_rerun_resumes(nodes, model, comfy_shim, monkeypatch,
                                                                         caplog, tmp_path):
    feats, audio = features(nodes, model, 3.5)  # 3 segments x 2 steps
    schedule = offline_schedule(nodes, model, image(), audio)
    work_root = tmp_path / "output" / "omnihuman" / "work"
    reference = run(nodes, model, feats, schedule)[0]
    assert not work_root.exists()  # a finished render leaves nothing behind

    events = []

    def press_cancel_in_segment_2(value, total, preview):
        events.append(value)
        if value == 3:  # segment 2 of 3 has done one of its two steps
            comfy_shim.request_interrupt()

    monkeypatch.setattr(comfy_shim, "FALLBACK_PROGRESS_HOOK", press_cancel_in_segment_2)
    with pytest.raises(Cancelled, match="segment 2 of 3.*1 finished segment"):
        run(nodes, model, feats, schedule)
    assert not comfy_shim.interrupted()  # the flag is consumed: the next queue item runs
    (folder,) = list(work_root.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "segment_0000.safetensors"]

    events.clear()
    monkeypatch.setattr(comfy_shim, "FALLBACK_PROGRESS_HOOK", lambda v, t, p: events.append(v))
    with caplog.at_level(logging.INFO, logger="omnihuman"):
        resumed = run(nodes, model, feats, schedule)[0]
    # Segment 1 came from disk at once; segments 2 and 3 took 2 steps each (plus the event of the
    # finished segment, which carries its last frame as the preview).
    assert events == [2, 3, 4, 4, 5, 6, 6]
    assert "resumed 1 finished segment" in caplog.text
    assert torch.equal(resumed, reference)  # bit-identical to the uninterrupted render
    assert not work_root.exists()


def test_a_different_seed_renders_afresh_in_the_same_work_folder(nodes, model, comfy_shim, monkeypatch, tmp_path):
    feats, audio = features(nodes, model, 3.5)
    schedule = offline_schedule(nodes, model, image(), audio)
    monkeypatch.setattr(comfy_shim, "FALLBACK_PROGRESS_HOOK",
                        lambda v, t, p: comfy_shim.request_interrupt() if v == 3 else None)
    with pytest.raises(Cancelled):
        run(nodes, model, feats, schedule, seed=1)
    events = []
    monkeypatch.setattr(comfy_shim, "FALLBACK_PROGRESS_HOOK", lambda v, t, p: events.append(v))
    other = run(nodes, model, feats, schedule, seed=2)[0]
    assert events == [1, 2, 2, 3, 4, 4, 5, 6, 6]  # nothing of the seed-1 job was reused
    assert other.shape[0] == 28


def test_cancel_in_the_sampler_and_the_upscaler(nodes, model, comfy_shim):
    feats, _ = features(nodes, model, 1.0)
    comfy_shim.request_interrupt()
    with pytest.raises(Cancelled):
        nodes.OmniHumanSampler().sample(model, image(), feats, "", 0, 0, 0.0, -1.0, -1.0, 0.0, 0, 0)
    assert not comfy_shim.interrupted()
    upscaler = nodes.OmniHumanUpscalerLoader().load("demo/upscaler.safetensors")[0]
    comfy_shim.request_interrupt()
    with pytest.raises(Cancelled):
        nodes.OmniHumanUpscaler().upscale(upscaler, torch.rand(5, 16, 32, 3), 0, 1, 0.0, 33, 8, 128, 16, model=model)
