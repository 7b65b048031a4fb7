"""Mechanisms of the sampler: time grid, solvers, two-scale guidance, conditioning layout, the loop."""

import math

import pytest
import torch

from omnihuman_core.errors import Cancelled, InputError
from omnihuman_core.sampling import (
    DEFAULT_DELTA,
    Euler,
    Guidance,
    Heun,
    SegmentConditions,
    get_solver,
    sample_segment,
    sigmas,
)

from .fakes import FieldModel, RecordingModel

C, H, W = 4, 4, 4


def _text(batch=1, length=3, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, dim, generator=g), torch.ones(batch, length, dtype=torch.bool)


def _audio(batch=1, frames=5, per=4, dim=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, per, dim, generator=g)


def _latent(frames, batch=1, seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, C, frames, H, W, generator=g)


# ---- flow ------------------------------------------------------------------------------------------
def test_sigmas_shape_ends_and_shift():
    s = sigmas(10, 1.0)
    assert s.shape == (11,) and s[0] == 1 and s[-1] == 0
    assert torch.allclose(s, torch.linspace(1, 0, 11))
    shifted = sigmas(10, 5.0)
    assert shifted[0] == 1 and shifted[-1] == 0 and (shifted[1:-1] > s[1:-1]).all()  # more time at high noise
    t = 0.3
    assert shifted[7].item() == pytest.approx(5 * t / (1 + 4 * t), abs=1e-6)
    assert (shifted[1:] < shifted[:-1]).all()


@pytest.mark.parametrize("steps,shift", [(0, 3.0), (-2, 3.0), (2.5, 3.0), (10, 0.0), (10, -1.0), (10, float("nan"))])
def test_sigmas_rejects_bad_values(steps, shift):
    with pytest.raises(InputError, match="steps|shift"):
        sigmas(steps, shift)


# ---- solvers ---------------------------------------------------------------------------------------
def test_solver_by_name_and_unknown_name_lists_choices():
    assert isinstance(get_solver("euler"), Euler) and isinstance(get_solver("Heun"), Heun)
    with pytest.raises(InputError, match="euler, heun"):
        get_solver("dpm++")


def test_heun_last_step_is_euler():
    calls = []

    def v(x, s):
        calls.append(s)
        return torch.ones_like(x)

    x, _ = Heun().step(v, torch.zeros(2), 0.25, 0.0)
    assert calls == [0.25] and torch.equal(x, torch.full((2,), -0.25))


def test_euler_is_exact_on_the_straight_flow_path():
    """For a known x0 the ideal velocity is (x - x0) / t: the path is straight, so Euler lands on x0."""
    x0 = _latent(5)
    model = FieldModel(lambda x, t: (x - x0) / t)
    cond = SegmentConditions(5, reference_mode="none", latent_shape=(1, C, H, W))
    text, mask = _text()
    out = sample_segment(model, cond, text, mask, None, steps=7, shift=3.0, guidance=Guidance(1, 1), seed=0)
    assert torch.allclose(out, x0, atol=1e-5)
    assert model.calls == 7  # scales of 1 -> one pass per step


def test_heun_beats_euler_on_a_curved_field():
    """dx/dt = x from t = 1 to 0 has the exact solution x(0) = x(1) / e."""
    cond = SegmentConditions(3, reference_mode="none", latent_shape=(1, C, H, W))
    text, mask = _text()
    kw = dict(steps=8, shift=1.0, guidance=Guidance(1, 1), seed=3)
    noise = sample_segment(FieldModel(lambda x, t: torch.zeros_like(x)), cond, text, mask, None, **kw)
    exact = noise / math.e
    errors = {}
    for name in ("euler", "heun"):
        out = sample_segment(FieldModel(lambda x, t: x), cond, text, mask, None, solver=name, **kw)
        errors[name] = (out - exact).abs().max().item()
    assert errors["heun"] < errors["euler"] / 5, errors


# ---- guidance --------------------------------------------------------------------------------------
def test_guidance_combines_three_passes_from_one_batched_forward():
    model = RecordingModel(C)
    x = torch.cat([_latent(3, batch=2), torch.zeros(2, 1, 3, H, W)], dim=1)
    t = torch.full((2,), 0.7)
    text, mask = _text(batch=2)
    audio = _audio(batch=2, frames=3)
    pos = torch.arange(3.0)
    g = Guidance(text_scale=5.0, audio_scale=4.0)
    v = g.predict(model, x, t, text, mask, audio, frame_positions=pos)
    assert len(model.calls) == 1
    call = model.calls[0]
    assert call["x"].shape[0] == 6  # (T,A), (0,A), (0,0) for each of the 2 samples
    assert not call["text_mask"][2:].any() and call["text_mask"][:2].all()  # null text = all False
    assert torch.equal(call["audio"][:4], torch.cat([audio, audio])) and not call["audio"][4:].any()

    def single(txt, msk, aud):
        return model(x, t, txt, aud, frame_positions=pos, text_mask=msk).float()

    null_mask = torch.zeros_like(mask)
    v_ta = single(text, mask, audio)
    v_0a = single(torch.zeros_like(text), null_mask, audio)
    v_00 = single(torch.zeros_like(text), null_mask, torch.zeros_like(audio))
    expected = v_00 + 5.0 * (v_ta - v_0a) + 4.0 * (v_0a - v_00)
    assert torch.allclose(v, expected, atol=1e-5)


def test_guidance_with_unit_scales_is_one_conditional_pass():
    model = RecordingModel(C)
    x = torch.cat([_latent(3), torch.zeros(1, 1, 3, H, W)], dim=1)
    text, mask = _text()
    audio = _audio(frames=3)
    v = Guidance(1.0, 1.0).predict(model, x, torch.tensor([0.5]), text, mask, audio, frame_positions=torch.arange(3.0))
    assert len(model.calls) == 1 and model.calls[0]["x"].shape[0] == 1
    assert model.calls[0]["text_mask"].all()
    expected = model(x, torch.tensor([0.5]), text, audio, frame_positions=torch.arange(3.0), text_mask=mask)
    assert torch.equal(v, expected)


def test_guidance_annealing():
    g = Guidance(5.0, 4.0, anneal="linear", min_scale_fraction=0.4)
    assert g.scales(0, 11) == (5.0, 4.0)
    assert g.scales(10, 11) == pytest.approx((2.0, 1.6))
    assert g.scales(5, 11) == pytest.approx((3.5, 2.8))
    c = Guidance(5.0, 4.0, anneal="cosine", min_scale_fraction=0.4)
    assert c.scales(0, 11) == (5.0, 4.0) and c.scales(10, 11) == pytest.approx((2.0, 1.6))
    assert c.scales(2, 11)[0] > g.scales(2, 11)[0]  # cosine keeps the scale longer early on
    assert Guidance(5.0, 4.0).scales(7, 11) == (5.0, 4.0)
    with pytest.raises(InputError, match="anneal"):
        Guidance(anneal="exp")
    with pytest.raises(InputError, match="text_scale"):
        Guidance(text_scale=-1)


# ---- conditioning ----------------------------------------------------------------------------------
def test_pseudo_last_frame_sits_at_t_last_plus_delta_and_never_reaches_the_output():
    model = RecordingModel(C)
    ref = torch.full((1, C, 1, H, W), 7.0)
    motion = _latent(2, seed=5)
    cond = SegmentConditions(5, motion_latents=motion, reference_latent=ref, reference_mode="pseudo_last_frame", delta=4)
    text, mask = _text()
    out = sample_segment(model, cond, text, mask, _audio(frames=5), steps=3, shift=1.0, seed=0)
    assert out.shape == (1, C, 5, H, W)
    for call in model.calls:
        assert call["frame_positions"].tolist() == [0, 1, 2, 3, 4, 8]  # t_last 4 + delta 4
        x = call["x"]
        assert x.shape == (3, C + 1, 6, H, W)
        assert torch.equal(x[:, :C, 5], ref[:, :, 0].expand(3, -1, -1, -1))  # the clean reference
        assert x[:, C].amax(dim=(2, 3)).tolist() == [[1, 1, 0, 0, 0, 1]] * 3  # mask: motion + ref
        assert torch.equal(x[:, :C, :2], motion.expand(3, -1, -1, -1, -1))
        assert call["audio"].shape[1] == 5  # audio only on generated frames
    assert not (out == 7.0).any()


def test_default_delta_and_other_reference_modes():
    ref = torch.zeros(1, C, 1, H, W)
    assert SegmentConditions(5, reference_latent=ref).frame_positions().tolist() == [0, 1, 2, 3, 4, 4 + DEFAULT_DELTA]
    assert SegmentConditions(5, reference_latent=ref, reference_mode="reference").frame_positions().tolist() == [0, 1, 2, 3, 4, 0]
    none = SegmentConditions(5, reference_latent=ref, reference_mode="none")
    assert none.frame_positions().tolist() == [0, 1, 2, 3, 4]
    x_in, _ = none.model_input(torch.zeros(1, C, 5, H, W))
    assert x_in.shape == (1, C + 1, 5, H, W) and not x_in[:, C].any()
    with pytest.raises(InputError, match="reference"):
        SegmentConditions(5, reference_mode="pseudo_last_frame")
    with pytest.raises(InputError, match="delta"):
        SegmentConditions(5, reference_latent=ref, delta=0)
    with pytest.raises(InputError, match="reference_mode"):
        SegmentConditions(5, reference_latent=ref, reference_mode="last")
    with pytest.raises(InputError, match="motion_latents"):
        SegmentConditions(2, motion_latents=_latent(3), reference_mode="none")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_conditioned_first_frames_come_back_bit_identical(dtype):
    model = RecordingModel(C, dtype=dtype)
    motion = _latent(2, seed=9)
    cond = SegmentConditions(4, motion_latents=motion, reference_latent=_latent(1, seed=4))
    text, mask = _text()
    seen = []
    out = sample_segment(model, cond, text, mask, _audio(frames=4), steps=4, shift=3.0, seed=1, solver="heun",
                         callback=lambda i, n, x0: seen.append((i, n, x0)))
    assert out.dtype == torch.float32
    assert torch.equal(out[:, :, :2], motion)
    assert not torch.equal(out[:, :, 2:], torch.zeros_like(out[:, :, 2:]))
    assert all(call["x"].dtype == dtype for call in model.calls)  # model inputs in the model dtype
    assert [(i, n) for i, n, _ in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(torch.equal(x0[:, :, :2], motion) for _, _, x0 in seen)


def test_seeded_noise_is_deterministic():
    cond = SegmentConditions(3, reference_latent=_latent(1))
    text, mask = _text()
    run = lambda **kw: sample_segment(RecordingModel(C), cond, text, mask, None, steps=3, **kw)  # noqa: E731
    a, b, c = run(seed=11), run(seed=11), run(seed=12)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, run(generator=torch.Generator().manual_seed(11)))
    with pytest.raises(InputError, match="seed"):
        run()


def test_cancel_is_checked_every_step():
    cond = SegmentConditions(3, reference_latent=_latent(1))
    text, mask = _text()
    model = RecordingModel(C)
    steps_done = []
    with pytest.raises(Cancelled):
        sample_segment(model, cond, text, mask, None, steps=10, seed=0,
                       callback=lambda i, n, x0: steps_done.append(i), cancel=lambda: len(steps_done) >= 2)
    assert steps_done == [1, 2] and len(model.calls) == 2


# ---- with the real tiny MMDiT ----------------------------------------------------------------------
def test_sample_segment_with_the_tiny_mmdit():
    from omnihuman_core.model import MMDiT, MMDiTConfig

    torch.manual_seed(0)
    cfg = MMDiTConfig.preset("tiny")
    model = MMDiT(cfg).eval()
    with torch.no_grad():  # random weights everywhere so the output layer is not zero
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * (0.1 if p.dim() < 2 else 1 / math.sqrt(p.shape[-1])))
    c, h, w = cfg.latent_channels, 4, 4
    motion = torch.randn(1, c, 2, h, w)
    cond = SegmentConditions(3, motion_latents=motion, reference_latent=torch.randn(1, c, 1, h, w))
    text = torch.randn(1, 5, cfg.text_dim)
    mask = torch.tensor([[True, True, True, False, False]])
    audio = torch.randn(1, 3, 4, cfg.audio_dim)
    kw = dict(steps=2, shift=3.0, seed=0)
    out = sample_segment(model, cond, text, mask, audio, **kw)
    assert out.shape == (1, c, 3, h, w) and torch.isfinite(out).all()
    assert torch.equal(out[:, :, :2], motion)
    assert torch.equal(out, sample_segment(model, cond, text, mask, audio, **kw))
    model_bf16 = model.to(torch.bfloat16)
    out16 = sample_segment(model_bf16, cond, text, mask, audio, **kw)
    assert out16.dtype == torch.float32 and torch.equal(out16[:, :, :2], motion)
    assert (out16 - out).abs().mean() < 0.2
