"""The SR model: MMDiT cond channels, UpscalerConfig presets, velocity conditioning, time grid, sampling, weights."""

import json
import math

import pytest
import torch

from omnihuman_core.errors import Cancelled, InputError, WeightsError
from omnihuman_core.model import MMDiT, MMDiTConfig, forward_flops, parameter_counts
from omnihuman_core.sampling import flow
from omnihuman_core.upscale import (
    PRESETS,
    Upscaler,
    UpscalerConfig,
    load_upscaler,
    sample_latent,
    save_upscaler,
    sr_sigmas,
)
from omnihuman_core.weights import save_safetensors


def _randomize(module, seed=0):
    """Random weights everywhere (the init zeroes the output layer, which would hide every path)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
    return module.eval()


def _mmdit_args(cfg, B=2, T=3, H=4, W=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return dict(
        x=torch.randn(B, cfg.in_channels, T, H, W, generator=g),
        timestep=torch.rand(B, generator=g),
        text=torch.randn(B, 5, cfg.text_dim, generator=g),
        audio=None,
        frame_positions=torch.arange(T, dtype=torch.float32),
    ), torch.randn(B, cfg.cond_channels or cfg.latent_channels, T, H, W, generator=g)


def _run(model, args, **kw):
    a = dict(args)
    with torch.no_grad():
        return model(a.pop("x"), a.pop("timestep"), a.pop("text"), a.pop("audio"), **a, **kw)


# ---- MMDiT cond channels -------------------------------------------------------------------------------
def test_cond_channels_default_zero_keeps_the_model_unchanged():
    cfg = MMDiTConfig.preset("tiny")
    assert cfg.cond_channels == 0 and cfg.embed_channels == cfg.in_channels
    model = MMDiT(cfg)
    assert model.patch_embed.in_features == cfg.in_channels * cfg.patch_volume
    # Old config dicts (no cond_channels key) still load.
    data = cfg.to_dict()
    del data["cond_channels"]
    assert MMDiTConfig.from_dict(data).cond_channels == 0


def test_cond_is_concatenated_after_x_before_patchify_and_changes_the_output():
    cfg = MMDiTConfig.preset("tiny", cond_channels=3)
    model = _randomize(MMDiT(cfg))
    pv = cfg.patch_volume
    assert model.patch_embed.in_features == (cfg.in_channels + 3) * pv
    args, cond = _mmdit_args(cfg)
    out = _run(model, args, cond=cond)
    assert out.shape == (2, cfg.latent_channels, 3, 4, 6)
    assert not torch.allclose(out, _run(model, args, cond=torch.zeros_like(cond)), atol=1e-4)
    # The patch embedding reads [x channels | cond channels] per patch: a cond-free model holding the x
    # columns of the same weights gives the same output once the cond columns are zeroed.
    plain = MMDiT(MMDiTConfig.preset("tiny"))
    state = dict(model.state_dict())
    state["patch_embed.weight"] = state["patch_embed.weight"][:, : cfg.in_channels * pv]
    plain.load_state_dict(state)
    with torch.no_grad():
        model.patch_embed.weight[:, cfg.in_channels * pv :] = 0
    assert torch.allclose(_run(model, args, cond=cond), _run(plain, args), atol=1e-5)


@pytest.mark.parametrize("cond_channels, give, message", [
    (3, None, "pass cond"),
    (0, (2, 3, 3, 4, 6), "takes no cond"),
    (3, (2, 2, 3, 4, 6), "cond must be"),
    (3, (2, 3, 2, 4, 6), "cond must be"),
])
def test_cond_shape_errors_say_what_to_pass(cond_channels, give, message):
    cfg = MMDiTConfig.preset("tiny", cond_channels=cond_channels)
    model = MMDiT(cfg)
    args, _ = _mmdit_args(cfg)
    with pytest.raises(InputError, match=message):
        _run(model, args, cond=None if give is None else torch.zeros(give))


def test_cond_channels_must_be_a_non_negative_int():
    for bad in (-1, 1.5, True):
        with pytest.raises(InputError, match="cond_channels"):
            MMDiTConfig.preset("tiny", cond_channels=bad)


def test_parameter_and_flop_counts_include_cond_channels():
    base, cond = MMDiTConfig.preset("tiny"), MMDiTConfig.preset("tiny", cond_channels=4)
    extra = 4 * base.patch_volume * base.hidden
    assert parameter_counts(cond)["video"] - parameter_counts(base)["video"] == extra
    assert parameter_counts(cond)["total"] == sum(p.numel() for p in MMDiT(cond).parameters())
    assert forward_flops(cond, 100, 0, 0) - forward_flops(base, 100, 0, 0) == 2 * 100 * extra


# ---- config and presets --------------------------------------------------------------------------------
def test_presets_round_trip_through_json_and_sizes():
    assert set(PRESETS) == {"sr-tiny", "sr-demo"}
    for name in PRESETS:
        cfg = UpscalerConfig.preset(name)
        again = UpscalerConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again.to_dict() == cfg.to_dict()
        assert cfg.mmdit.cond_channels == cfg.mmdit.latent_channels and cfg.scale == 2
    assert UpscalerConfig().to_dict() == UpscalerConfig.preset("sr-demo").to_dict()
    demo = sum(p.numel() for p in Upscaler.from_config("sr-demo").parameters())
    assert 1_000_000 < demo < 2_000_000  # 3 MB in fp16: fits the 40 MB budget next to the other demo files
    assert UpscalerConfig.preset("sr-demo").mmdit.latent_channels == 16  # the demo VAE's


@pytest.mark.parametrize("bad, message", [
    (dict(scale=1), "scale"),
    (dict(steps=0), "steps"),
    (dict(strength=0.0), "strength"),
    (dict(strength=1.5), "strength"),
    (dict(shift=-1.0), "shift"),
    (dict(mmdit=dict(latent_channels=4, cond_channels=0)), "cond_channels"),
])
def test_invalid_upscaler_configs_say_what_is_wrong(bad, message):
    with pytest.raises(InputError, match=message):
        UpscalerConfig.preset("sr-tiny", **bad)


# ---- velocity ------------------------------------------------------------------------------------------
def test_velocity_is_the_mmdit_with_zero_mask_null_text_and_no_audio():
    up = _randomize(Upscaler.from_config("sr-tiny"))
    c = up.config.mmdit
    g = torch.Generator().manual_seed(0)
    x, lr = torch.randn(2, 4, 2, 4, 4, generator=g), torch.randn(2, 4, 2, 4, 4, generator=g)
    t = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        v = up.velocity(x, t, lr)
        # The null text as the contract defines it: tokens present but all masked out.
        ref = up.mmdit(torch.cat([x, torch.zeros(2, 1, 2, 4, 4)], 1), t, torch.randn(2, 3, c.text_dim, generator=g),
                       None, frame_positions=torch.arange(2.0), text_mask=torch.zeros(2, 3, dtype=torch.bool),
                       cond=lr)
    assert v.dtype == torch.float32 and v.shape == x.shape
    assert torch.allclose(v, ref, atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(v, up.velocity(x, t, torch.zeros_like(lr)), atol=1e-4)


def test_velocity_checks_shapes():
    up = Upscaler.from_config("sr-tiny")
    with pytest.raises(InputError, match="x_t must be"):
        up.velocity(torch.zeros(1, 3, 2, 4, 4), 0.5, torch.zeros(1, 3, 2, 4, 4))
    with pytest.raises(InputError, match="low-res latent"):
        up.velocity(torch.zeros(1, 4, 2, 4, 4), 0.5, torch.zeros(1, 4, 2, 4, 6))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_runs_on_cpu(dtype):
    up = Upscaler.from_config("sr-tiny", dtype=dtype)
    x = torch.randn(1, 4, 2, 4, 4)
    v = up.velocity(x, 0.5, x)
    assert v.dtype == torch.float32 and torch.isfinite(v).all()


# ---- time grid and sampling ----------------------------------------------------------------------------
def test_sr_sigmas_start_at_strength_and_follow_the_shifted_grid():
    assert torch.equal(sr_sigmas(8, 3.0, 1.0), flow.sigmas(8, 3.0))
    for strength, shift in ((0.6, 1.0), (0.5, 3.0), (0.05, 5.0)):
        sig = sr_sigmas(8, shift, strength)
        assert sig.shape == (9,) and sig.dtype == torch.float32
        assert sig[0] == torch.tensor(strength, dtype=torch.float32) and sig[-1].item() == 0.0
        assert bool((sig[1:] < sig[:-1]).all())
    assert torch.allclose(sr_sigmas(4, 1.0, 0.6), torch.linspace(0.6, 0.0, 5))
    for bad in (0.0, -0.1, 1.01, "x"):
        with pytest.raises(InputError, match="strength"):
            sr_sigmas(4, 1.0, bad)


class _ExactUpscaler(Upscaler):
    """Velocity of the straight path to `lr` itself: sampling must land exactly on `lr`."""

    def velocity(self, x_t, t, lr):
        return (x_t - lr) / torch.as_tensor(t).reshape(-1, 1, 1, 1, 1)


def test_sample_latent_integrates_from_the_noised_low_res_latent():
    up = _ExactUpscaler(UpscalerConfig.preset("sr-tiny"))
    g = torch.Generator().manual_seed(0)
    lr, noise = torch.randn(1, 4, 2, 4, 4, generator=g), torch.randn(1, 4, 2, 4, 4, generator=g)
    seen = []
    out = sample_latent(up, lr, noise, steps=5, strength=0.7, callback=lambda i, n: seen.append((i, n)))
    assert torch.allclose(out, lr, atol=1e-5)
    assert seen == [(i, 5) for i in range(1, 6)]


def test_sample_latent_is_deterministic_uses_config_defaults_and_cancels():
    up = _randomize(Upscaler(UpscalerConfig.preset("sr-tiny", steps=3)))
    g = torch.Generator().manual_seed(1)
    lr, noise = torch.randn(1, 4, 2, 4, 4, generator=g), torch.randn(1, 4, 2, 4, 4, generator=g)
    calls = []
    a = sample_latent(up, lr, noise, callback=lambda i, n: calls.append(n))
    assert calls == [3, 3, 3]
    assert torch.equal(a, sample_latent(up, lr, noise))
    assert not torch.allclose(a, sample_latent(up, lr, noise, strength=1.0))
    with pytest.raises(Cancelled):
        sample_latent(up, lr, noise, cancel=lambda: True)
    with pytest.raises(InputError, match="noise"):
        sample_latent(up, lr, noise[:, :, :1])


# ---- weights -------------------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    up = _randomize(Upscaler(UpscalerConfig.preset("sr-tiny", strength=0.5, steps=4)))
    path = save_upscaler(tmp_path / "up.safetensors", up, extra={"trained_steps": 10})
    again = load_upscaler(path)
    assert again.config.to_dict() == up.config.to_dict() and not again.training
    x = torch.randn(1, 4, 2, 4, 4)
    with torch.no_grad():
        assert torch.equal(up.velocity(x, 0.4, x), again.velocity(x, 0.4, x))
    half = load_upscaler(path, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16


def test_load_rejects_other_kinds_and_mismatched_files(tmp_path):
    mmdit = MMDiT(MMDiTConfig.preset("tiny"))
    p = save_safetensors(tmp_path / "mmdit.safetensors", mmdit.state_dict(), "mmdit", mmdit.config.to_dict())
    with pytest.raises(WeightsError, match="'mmdit' model"):
        load_upscaler(p)
    up = Upscaler.from_config("sr-tiny")
    cfg = UpscalerConfig.preset("sr-demo").to_dict()
    p = save_safetensors(tmp_path / "bad.safetensors", up.state_dict(), "upscaler", cfg)
    with pytest.raises(WeightsError, match="does not match"):
        load_upscaler(p)
    p = save_safetensors(tmp_path / "bad_cfg.safetensors", up.state_dict(), "upscaler", {"scael": 2})
    with pytest.raises(WeightsError, match="scael"):
        load_upscaler(p)
    p = save_safetensors(tmp_path / "no_cfg.safetensors", up.state_dict(), "upscaler", {})
    with pytest.raises(WeightsError, match="no upscaler config"):
        load_upscaler(p)
