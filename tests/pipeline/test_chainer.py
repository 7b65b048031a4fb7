"""SegmentChainer: exact lengths, streaming memory, resume bit-exactness, fingerprints, Reflection, cancel."""

import json
import logging

import numpy as np
import pytest
import torch

from omnihuman_core.audio import pack_latent_frames
from omnihuman_core.errors import Cancelled, InputError
from omnihuman_core.pipeline import RenderSettings, SegmentChainer, plan_segments
from omnihuman_core.pipeline.chainer import segment_seed, uint8_to_video

from .fakes import C, FakeModel, FakeTextEncoder, FakeVAE

H = W = 16
SEG, MOTION, STEPS = 17, 5, 2
N_FOUR = SEG + 3 * (SEG - MOTION)  # 53 frames -> exactly 4 segments


def settings(**kw):
    base = dict(segment_frames=SEG, motion_frames=MOTION, steps=STEPS, shift=3.0, audio_window=5)
    return RenderSettings(**{**base, **kw})


def make(record=True, **kw):
    model, vae, text = FakeModel(record=record), FakeVAE(), FakeTextEncoder()
    return SegmentChainer(model, vae, text, settings(**kw)), model, vae, text


def reference():
    g = torch.Generator().manual_seed(0)
    return torch.randn(1, C, 1, H // 8, W // 8, generator=g)


def audio_frames(n):
    # Every frame distinct, so a wrong audio offset is visible.
    return torch.arange(n * 5 * 2, dtype=torch.float32).reshape(n, 5, 2) / (n * 10)


class Sink:
    """Collects emitted frames; notes how many model calls had happened at each emission."""

    def __init__(self, model=None):
        self.chunks, self.model, self.calls_at = [], model, []

    def __call__(self, frames):
        assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[1:] == (H, W, 3)
        self.chunks.append(frames.copy())
        self.calls_at.append(self.model.calls if self.model is not None else None)

    @property
    def video(self):
        return np.concatenate(self.chunks)


def run(chainer, n, sink, prompts=None, **kw):
    n_seg = len(chainer.plan(n))
    prompts = prompts if prompts is not None else [f"shot {i}" for i in range(n_seg)]
    return chainer.run(n, prompts, reference_latent=reference(), audio_frames=audio_frames(n), seed=7,
                       on_frames=sink, **kw)


@pytest.mark.parametrize("n", [1, 6, SEG - 1, SEG, SEG + 1, N_FOUR, N_FOUR + 2])
def test_output_has_exactly_n_frames(n):
    chainer, model, _, _ = make(record=False)
    sink = Sink(model)
    result = run(chainer, n, sink)
    assert sink.video.shape == (n, H, W, 3)
    assert len(result.segments) == len(plan_segments(n, SEG, MOTION))
    assert result.rendered_segments == len(result.segments)
    assert model.calls == len(result.segments) * STEPS  # three guidance passes, one forward per step


@pytest.mark.parametrize("n_segments", [4, 12])
def test_streams_frames_and_holds_at_most_two_segments(n_segments):
    chainer, model, _, _ = make(record=False)
    sink = Sink(model)
    run(chainer, SEG + (n_segments - 1) * (SEG - MOTION), sink)
    # One emission per segment, each right after that segment's own model calls: nothing accumulates.
    assert sink.calls_at == [STEPS * (i + 1) for i in range(n_segments)]
    assert [c.shape[0] for c in sink.chunks] == [SEG] + [SEG - MOTION] * (n_segments - 1)
    assert 0 < chainer.peak_frames_held <= 2 * SEG
    # Nothing (not even the motion tail) is kept on the chainer after the run.
    assert not [v for v in vars(chainer).values() if isinstance(v, (np.ndarray, torch.Tensor))]


def test_continuation_reencodes_the_last_motion_frames_and_audio_advances():
    chainer, model, vae, _ = make()
    sink = Sink(model)
    n = SEG + 6  # the second segment is short: render 13 frames, keep 11
    af = audio_frames(n)
    chainer.run(n, ["a", "b"], reference_latent=reference(), audio_frames=af, seed=1, on_frames=sink)
    segments = chainer.plan(n)
    first_call_of = {0: 0, 1: STEPS}
    video = sink.video
    for seg in segments:
        x = model.inputs[first_call_of[seg.index]]
        audio = x["audio"][0]
        expected = af[seg.start:seg.start + seg.render_frames]
        expected = torch.cat([expected, torch.zeros(seg.render_frames - expected.shape[0], 5, 2)])
        assert torch.equal(audio, pack_latent_frames(expected))
        t = 1 + (seg.render_frames - 1) // 4
        assert x["frame_positions"].tolist() == list(range(t)) + [t - 1 + chainer.settings.delta]
    # Segment 1 starts from the last 5 EMITTED frames of segment 0, re-encoded by the VAE, pinned.
    tail = video[SEG - MOTION:SEG]
    assert torch.equal(vae.encoded_frames[-1], uint8_to_video(tail))
    motion = vae.encode(uint8_to_video(tail))
    assert torch.equal(model.inputs[STEPS]["x"][:1, :C, :2], motion)
    assert model.inputs[STEPS]["x"][0, C, :, 0, 0].tolist()[:3] == [1, 1, 0]


def test_prompt_list_shorter_than_segments_is_rejected():
    chainer, _, _, _ = make()
    with pytest.raises(InputError, match="2 prompt.*4 segments"):
        run(chainer, N_FOUR, Sink(), prompts=["a", "b"])


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    chainer, _, _, _ = make(record=False)
    whole = Sink()
    run(chainer, N_FOUR, whole, work_dir=tmp_path / "a")

    def crash_in_segment_2(p):
        if p.segment == 2 and p.latent is not None:
            raise RuntimeError("power cut")

    chainer, _, _, _ = make(record=False)
    with pytest.raises(RuntimeError, match="power cut"):
        run(chainer, N_FOUR, Sink(), work_dir=tmp_path / "b", progress=crash_in_segment_2)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [s["index"] for s in manifest["segments"]] == [0, 1]

    chainer, model, _, _ = make(record=False)
    resumed, events = Sink(model), []
    result = run(chainer, N_FOUR, resumed, work_dir=tmp_path / "b", progress=events.append)
    assert model.calls == 2 * STEPS  # segments 0 and 1 were not rendered again
    assert result.resumed_segments == 2 and result.rendered_segments == 2
    assert resumed.calls_at[:2] == [0, 0]  # finished frames re-emitted first
    assert np.array_equal(resumed.video, whole.video)  # bit-exact
    assert [e.step for e in events] == [2, 4, 5, 6, 6, 7, 8, 8]  # one counter over all segments
    assert all(e.total == 4 * STEPS for e in events)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [s["prompt"] for s in manifest["segments"]] == [f"shot {i}" for i in range(4)]
    assert [s["seed"] for s in manifest["segments"]] == [segment_seed(7, i) for i in range(4)]


def test_damaged_segment_file_is_rendered_again(tmp_path):
    chainer, _, _, _ = make(record=False)
    whole = Sink()
    run(chainer, N_FOUR, whole, work_dir=tmp_path)
    (tmp_path / "segment_0002.safetensors").write_bytes(b"garbage")
    chainer, model, _, _ = make(record=False)
    again = Sink()
    run(chainer, N_FOUR, again, work_dir=tmp_path)
    assert model.calls == 2 * STEPS and np.array_equal(again.video, whole.video)


def test_changed_fingerprint_restarts_or_raises(tmp_path, caplog):
    chainer, _, _, _ = make(record=False)
    run(chainer, N_FOUR, Sink(), work_dir=tmp_path, fingerprint={"image": "abc"})
    with pytest.raises(InputError, match="different job.*inputs.image"):
        run(make(record=False)[0], N_FOUR, Sink(), work_dir=tmp_path, fingerprint={"image": "xyz"}, on_mismatch="error")

    chainer, model, _, _ = make(record=False, steps=3)
    with caplog.at_level(logging.WARNING):
        fresh = Sink()
        run(chainer, N_FOUR, fresh, work_dir=tmp_path, fingerprint={"image": "abc"})
    assert "settings.steps" in caplog.text and "starting over" in caplog.text
    assert model.calls == 4 * 3  # everything rendered again, nothing mixed in
    reference_run = Sink()
    run(make(record=False, steps=3)[0], N_FOUR, reference_run)
    assert np.array_equal(fresh.video, reference_run.video)


def test_reflection_replaces_future_prompts_and_protects_past_ones(tmp_path):
    chainer, _, _, text = make(record=False)
    reports = []

    def hook(report):
        reports.append(report)
        assert report.last_frames.dtype == np.uint8 and report.last_frames.shape[0] == MOTION
        if report.index == 0:
            return report.prompts[:1] + ["revised 1", "revised 2", "revised 3"]
        return None

    result = run(chainer, N_FOUR, Sink(), work_dir=tmp_path, hook=hook)
    assert [r.index for r in reports] == [0, 1, 2]  # not after the last segment
    assert reports[1].prompts == ["shot 0", "revised 1", "revised 2", "revised 3"]
    assert text.seen == ["shot 0", "revised 1", "revised 2", "revised 3"]
    assert result.prompts == text.seen
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [s["prompt"] for s in manifest["segments"]] == text.seen

    def rewrite_history(report):
        return ["changed"] + report.prompts[1:]

    with pytest.raises(InputError, match="already rendered segment"):
        run(make()[0], N_FOUR, Sink(), hook=rewrite_history)
    with pytest.raises(InputError, match="1 prompt.*4 segments"):
        run(make()[0], N_FOUR, Sink(), hook=lambda r: ["only one"])


def test_reflected_prompts_survive_a_resume(tmp_path):
    def hook(report):
        return report.prompts[: report.index + 1] + [f"after {report.index}"] * (report.n_segments - report.index - 1)

    whole = Sink()
    run(make(record=False)[0], N_FOUR, whole, hook=hook)

    def crash(p):
        if p.segment == 2 and p.latent is not None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(make(record=False)[0], N_FOUR, Sink(), work_dir=tmp_path, hook=hook, progress=crash)
    chainer, _, _, text = make(record=False)
    resumed = Sink()
    result = run(chainer, N_FOUR, resumed, work_dir=tmp_path, hook=hook)
    assert text.seen == ["after 1", "after 2"]
    assert result.prompts == ["shot 0", "after 0", "after 1", "after 2"]
    assert np.array_equal(resumed.video, whole.video)


def test_cancel_keeps_finished_segments(tmp_path):
    chainer, model, _, _ = make(record=False)
    sink = Sink()
    with pytest.raises(Cancelled, match="segment 3 of 4.*kept"):
        run(chainer, N_FOUR, sink, work_dir=tmp_path, cancel=lambda: model.calls >= 2 * STEPS + 1)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert len(manifest["segments"]) == 2 and (tmp_path / "segment_0001.safetensors").exists()
    chainer, model, _, _ = make(record=False)
    run(chainer, N_FOUR, Sink(), work_dir=tmp_path)
    assert model.calls == 2 * STEPS


def test_motion_noise_moves_the_carried_latents_along_the_flow_path():
    """RenderSettings.motion_noise: the re-encoded motion latents reach the model at that flow time on noise
    drawn from the segment's seed (the same on a re-render); 0 keeps them exact (the test above)."""
    from omnihuman_core.sampling.denoise import make_noise
    from omnihuman_core.sampling.flow import noised

    def second_segment_motion(level, seed=1):
        chainer, model, vae, _ = make(motion_noise=level)
        sink = Sink(model)
        n = SEG + 6
        chainer.run(n, ["a", "b"], reference_latent=reference(), audio_frames=audio_frames(n), seed=seed,
                    on_frames=sink)
        clean = vae.encode(uint8_to_video(sink.video[SEG - MOTION:SEG]))
        return model.inputs[STEPS]["x"][:1, :C, :2], clean, model.inputs[0]["x"]

    got, clean, first = second_segment_motion(0.05)
    g = torch.Generator().manual_seed(segment_seed(1, 1) ^ 0x6D6F74696F6E)
    assert torch.allclose(got, noised(clean, make_noise(tuple(clean.shape), generator=g), 0.05), atol=1e-6)
    assert not torch.allclose(got, clean, atol=1e-3)
    again, _, _ = second_segment_motion(0.05)
    assert torch.equal(got, again)
    # Segment 0 has no motion latents: nothing to add noise to, so it is the same as without.
    _, _, first_clean = second_segment_motion(0.0)
    assert torch.equal(first, first_clean)
    with pytest.raises(InputError, match="motion_noise"):
        settings(motion_noise=1.0)


def test_first_frame_from_reference_pins_the_first_latent():
    chainer, model, _, _ = make(first_frame_from_reference=True)
    sink = Sink(model)
    run(chainer, 9, sink)
    ref = reference()
    x = model.inputs[0]["x"]
    assert torch.equal(x[:1, :C, :1], ref) and x[0, C, :, 0, 0].tolist() == [1, 0, 0, 1]
    expected = FakeVAE().decode(ref)
    assert np.array_equal(sink.video[0], ((expected[0, :, 0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5)
                          .round().to(torch.uint8).numpy())


def test_a_failed_reflection_is_retried_on_resume_without_re_rendering(tmp_path):
    calls = []

    def flaky_hook(report):
        calls.append(report.index)
        if report.index == 1 and calls.count(1) == 1:
            raise ConnectionError("LLM endpoint down")
        return report.prompts[: report.index + 1] + ["later"] * (report.n_segments - report.index - 1)

    with pytest.raises(ConnectionError):
        run(make(record=False)[0], N_FOUR, Sink(), work_dir=tmp_path, hook=flaky_hook)
    chainer, model, _, text = make(record=False)
    result = run(chainer, N_FOUR, Sink(), work_dir=tmp_path, hook=flaky_hook)
    assert calls == [0, 1, 1, 2]  # segment 1's reflection retried first, then the run continues
    assert model.calls == 2 * STEPS and result.resumed_segments == 2
    assert result.prompts == ["shot 0", "later", "later", "later"]


def test_resume_is_bit_exact_with_the_real_tiny_components(tmp_path):
    from omnihuman_core.model import MMDiT, MMDiTConfig
    from omnihuman_core.text import BuiltinTextEncoder
    from omnihuman_core.vae import CausalVideoVAE

    torch.manual_seed(0)
    model = MMDiT(MMDiTConfig.preset("tiny")).eval()
    with torch.no_grad():
        for p in model.final.parameters():
            p.normal_(0, 0.05)
    parts = (model, CausalVideoVAE.from_config("tiny").eval(), BuiltinTextEncoder.from_config("tiny").eval())
    s = settings(segment_frames=9, motion_frames=5, steps=2, audio_window=3)
    n = 9 + 2 * 4  # 3 segments
    af = torch.randn(n, 3, 8, generator=torch.Generator().manual_seed(0))  # 3 x 8 = tiny audio_dim 24
    ref = torch.randn(1, 4, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    kw = dict(reference_latent=ref, audio_frames=af, seed=5)
    whole = Sink()
    SegmentChainer(*parts, s).run(n, ["a", "b", "c"], on_frames=whole, **kw)

    def crash(p):
        if p.segment == 2 and p.latent is not None:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        SegmentChainer(*parts, s).run(n, ["a", "b", "c"], on_frames=Sink(), work_dir=tmp_path, progress=crash, **kw)
    resumed = Sink()
    result = SegmentChainer(*parts, s).run(n, ["a", "b", "c"], on_frames=resumed, work_dir=tmp_path, **kw)
    assert result.resumed_segments == 2 and result.rendered_segments == 1
    assert resumed.video.shape == (n, H, W, 3) and np.array_equal(resumed.video, whole.video)
    assert len({c.tobytes() for c in resumed.chunks}) == 3  # the segments really differ
