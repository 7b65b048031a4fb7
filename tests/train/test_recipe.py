"""The flow-matching objective builds the model input the way inference does, and stages train what METHOD §7 says."""

import pytest
import torch

from omnihuman_core.errors import InputError
from omnihuman_core.model import MMDiT, MMDiTConfig
from omnihuman_core.model.mmdit import is_audio_branch_param
from omnihuman_core.text import BuiltinTextEncoder
from omnihuman_core.train.recipe import (Recipe, build_stage2, flow_matching_loss, sample_timesteps,
                                         trainable_parameters)


def _parts(seed=0, audio_mode="branch"):
    torch.manual_seed(seed)
    cfg = MMDiTConfig.preset("tiny", audio_mode=audio_mode)
    model = MMDiT(cfg)
    text = BuiltinTextEncoder.from_config("tiny")
    B, C, t = 2, cfg.latent_channels, 5
    g = torch.Generator().manual_seed(seed)
    batch = {"latents": torch.randn(B, C, t, 4, 4, generator=g), "last_latent": torch.randn(B, C, 1, 4, 4, generator=g),
             "reference_latent": torch.randn(B, C, 1, 4, 4, generator=g),
             "audio": torch.randn(B, t, 4, cfg.audio_dim, generator=g), "captions": ["a cat waves", "a robot nods"]}
    return model, text, batch


def test_same_generator_same_loss_and_finite():
    model, text, batch = _parts()
    a, _ = flow_matching_loss(model, text, batch, Recipe(), "stage1", torch.Generator().manual_seed(3))
    b, _ = flow_matching_loss(model, text, batch, Recipe(), "stage1", torch.Generator().manual_seed(3))
    assert torch.isfinite(a) and a.item() == b.item()


def test_pinned_frames_take_no_part_in_the_loss():
    model, text, batch = _parts()
    recipe = Recipe(p_first_frames=1.0, p_drop_last=0.0, p_drop_text=0.0, p_drop_audio=0.0)
    seen = {}

    def hook(module, args, kwargs, out):
        seen["x"], seen["out"] = args[0].detach(), out.detach()

    h = model.register_forward_hook(hook, with_kwargs=True)
    loss, stats = flow_matching_loss(model, text, batch, recipe, "stage1", torch.Generator().manual_seed(5))
    h.remove()
    m = int(stats["pinned"])
    assert m == 2
    x = seen["x"]
    # Mask channel: 1 on the pinned frames and on the appended pseudo last frame, 0 elsewhere.
    mask = x[:, -1, :, 0, 0]
    assert mask[0].tolist() == [1, 1, 0, 0, 0, 1]
    # Pinned frames carry the clean latents, the pseudo frame carries last_latent.
    assert torch.equal(x[:, :-1, :m], batch["latents"][:, :, :m])
    assert torch.equal(x[:, :-1, -1:], batch["last_latent"])
    # The loss is the MSE over the generated frames only (recomputed from the recorded output).
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(5)
    g_loss, _ = flow_matching_loss(model, text, batch, recipe, "stage1", g)
    assert g_loss.item() == loss.item()


def test_matches_inference_layout_for_pseudo_last_frame():
    from omnihuman_core.sampling.conditioning import SegmentConditions

    model, text, batch = _parts()
    positions = {}

    def hook(module, args, kwargs, out):
        positions["p"] = kwargs["frame_positions"].clone()

    h = model.register_forward_hook(hook, with_kwargs=True)
    recipe = Recipe(p_first_frames=0.0, p_drop_last=0.0, delta=4.0)
    flow_matching_loss(model, text, batch, recipe, "stage1", torch.Generator().manual_seed(0))
    h.remove()
    inference = SegmentConditions(5, reference_latent=batch["last_latent"], reference_mode="pseudo_last_frame", delta=4.0)
    assert torch.equal(positions["p"], inference.frame_positions())


def test_dropouts_give_the_samplers_null_conditions():
    model, text, batch = _parts()
    got = {}

    def hook(module, args, kwargs, out):
        got["audio"], got["mask"] = args[3], kwargs["text_mask"]

    h = model.register_forward_hook(hook, with_kwargs=True)
    flow_matching_loss(model, text, batch, Recipe(p_drop_text=1.0, p_drop_audio=1.0), "stage1",
                       torch.Generator().manual_seed(0))
    assert not got["mask"].any() and torch.count_nonzero(got["audio"]) == 0
    flow_matching_loss(model, text, batch, Recipe(), "base", torch.Generator().manual_seed(0))
    h.remove()
    assert got["audio"] is None  # the text+video base sees no audio tokens


def test_loss_decreases_when_overfitting_one_batch():
    model, text, batch = _parts()
    params = trainable_parameters(model, text, "joint")
    opt = torch.optim.AdamW(params, lr=3e-3)
    recipe = Recipe(p_drop_text=0.0, p_drop_audio=0.0)
    losses = []
    for i in range(40):
        loss, _ = flow_matching_loss(model, text, batch, recipe, "joint", torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_stage_parameter_sets():
    model, text, _ = _parts()
    base = {id(p) for p in trainable_parameters(model, text, "base")}
    names = dict(model.named_parameters())
    assert all((id(p) in base) != is_audio_branch_param(n) for n, p in names.items())
    assert all(id(p) in base for p in text.parameters())  # the text encoder learns with the base
    s1 = {id(p) for p in trainable_parameters(model, text, "stage1")}
    assert all(id(p) in s1 for p in model.parameters()) and not any(id(p) in s1 for p in text.parameters())


def test_build_stage2_takes_text_video_from_base_and_audio_from_stage1():
    a, _, _ = _parts(0)
    b, _, _ = _parts(1)
    merged = build_stage2(a.state_dict(), b.state_dict())
    for k, v in merged.items():
        src = b.state_dict()[k] if is_audio_branch_param(k) else a.state_dict()[k]
        assert torch.equal(v, src), k
    with pytest.raises(InputError, match="not the same architecture"):
        build_stage2(a.state_dict(), {k: v for k, v in list(b.state_dict().items())[1:]})


def test_logit_normal_timesteps():
    t = sample_timesteps(20000, Recipe(), torch.Generator().manual_seed(0))
    assert 0 < t.min() and t.max() < 1
    assert abs(t.median().item() - 0.5) < 0.02
    assert ((t > 0.25) & (t < 0.75)).float().mean() > 0.6  # mass in the middle


def test_bad_recipe():
    with pytest.raises(InputError, match="reference_mode"):
        Recipe(reference_mode="image")
    with pytest.raises(InputError, match="p_drop_text"):
        Recipe(p_drop_text=2)
