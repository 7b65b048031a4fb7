"""MMDiT mechanisms: joint attention, text mask, RoPE, adaLN-zero, extra frames, variants, dtypes."""

import dataclasses

import pytest
import torch

from omnihuman_core.errors import InputError
from omnihuman_core.model import MMDiT, MMDiTConfig
from omnihuman_core.model.mmdit import branch_of_param


def _close(a, b, atol=1e-5):
    return torch.allclose(a, b, atol=atol, rtol=1e-4)


def test_output_shape_and_extra_frames_can_be_dropped(random_model, make_inputs, forward):
    model = random_model()
    cfg = model.config
    # 3 generated frames + 1 pseudo last frame at t_last + delta; audio covers the generated frames only.
    inputs = make_inputs(cfg, frames=4, audio_frames=3)
    positions = torch.tensor([0.0, 1.0, 2.0, 2.0 + 8.0])
    out = forward(model, inputs, frame_positions=positions)
    assert out.shape == (2, cfg.latent_channels, 4, 4, 6)
    assert torch.isfinite(out).all()
    generated = out[:, :, :3]
    assert generated.shape == (2, cfg.latent_channels, 3, 4, 6)


def test_audio_changes_video_through_joint_attention(random_model, make_inputs, forward):
    model = random_model()
    inputs = make_inputs(model.config)
    base = forward(model, inputs)
    other = forward(model, inputs, audio=torch.zeros_like(inputs["audio"]))
    assert not _close(base, other, atol=1e-3)


def test_no_audio_tokens_and_short_audio_work(random_model, make_inputs, forward):
    for mode in ("branch", "cross_attention"):
        model = random_model(audio_mode=mode)
        inputs = make_inputs(model.config)
        assert torch.isfinite(forward(model, inputs, audio=None)).all()
        assert torch.isfinite(forward(model, inputs, audio=inputs["audio"][:, :0])).all()
        assert torch.isfinite(forward(model, inputs, audio=inputs["audio"][:, :1])).all()


def test_cross_attention_variant_never_updates_audio_tokens_but_audio_matters(random_model, make_inputs, forward):
    model = random_model(audio_mode="cross_attention")
    assert all(block.audio is None and block.audio_cross is not None for block in model.blocks)
    inputs = make_inputs(model.config)
    seen = []
    hooks = [
        block.register_forward_hook(lambda mod, args, out: seen.append((args[2], out[2])))
        for block in model.blocks
    ]
    embedded = []
    hooks.append(model.audio_embed.register_forward_hook(lambda mod, args, out: embedded.append(out)))
    base = forward(model, inputs)
    for h in hooks:
        h.remove()
    assert len(seen) == model.config.depth
    for audio_in, audio_out in seen:
        assert torch.equal(audio_in, embedded[0]) and torch.equal(audio_out, embedded[0])
    other = forward(model, inputs, audio=torch.zeros_like(inputs["audio"]))
    assert not _close(base, other, atol=1e-3)


def test_branch_variant_refines_audio_tokens_layer_by_layer(random_model, make_inputs, forward):
    model = random_model(depth=3)
    inputs = make_inputs(model.config)
    seen = []
    hook = model.blocks[0].register_forward_hook(lambda mod, args, out: seen.append((args[2], out[2])))
    forward(model, inputs)
    hook.remove()
    audio_in, audio_out = seen[0]
    assert not torch.allclose(audio_in, audio_out)


# Row 0 hides its last three tokens, row 1 its second and last.
_MASK = [[True, True, True, False, False, False], [True, False, True, True, True, False]]


def _masked_output_ignores_hidden_tokens(model, inputs, forward) -> torch.Tensor:
    """The output under `_MASK`, after checking that scrambling the hidden tokens leaves it unchanged."""
    mask = torch.tensor(_MASK)
    base = forward(model, inputs, text_mask=mask)
    scrambled = inputs["text"].clone()
    scrambled[~mask] = torch.randn(int((~mask).sum()), model.config.text_dim) * 10
    assert _close(base, forward(model, inputs, text=scrambled, text_mask=mask), atol=1e-6)
    return base


def test_masked_text_tokens_do_not_influence_the_output(random_model, make_inputs, forward):
    for mode in ("branch", "cross_attention"):
        model = random_model(audio_mode=mode)
        inputs = make_inputs(model.config, text_len=6)
        mask = torch.tensor(_MASK)
        base = _masked_output_ignores_hidden_tokens(model, inputs, forward)
        # ...while a visible token does matter.
        changed = inputs["text"].clone()
        changed[0, 0] += 5
        assert not _close(base, forward(model, inputs, text=changed, text_mask=mask), atol=1e-3)


def test_fully_masked_text_is_the_null_condition(random_model, make_inputs, forward):
    model = random_model()
    inputs = make_inputs(model.config)
    null = torch.zeros(2, inputs["text"].shape[1], dtype=torch.bool)
    out = forward(model, inputs, text_mask=null)
    assert torch.isfinite(out).all()
    # Equivalent to having no text tokens at all.
    assert _close(out, forward(model, inputs, text=inputs["text"][:, :0]), atol=1e-5)


def test_rope_is_relative_in_time_and_the_last_frame_position_matters(random_model, make_inputs, forward):
    model = random_model()
    inputs = make_inputs(model.config, frames=4, audio_frames=3)
    # Text has no RoPE, so text-video attention sees absolute frame positions; with the null text only
    # relative positions remain and a global shift must not change anything.
    null_text = torch.zeros(2, inputs["text"].shape[1], dtype=torch.bool)
    positions = torch.tensor([0.0, 1.0, 2.0, 10.0])
    base = forward(model, inputs, frame_positions=positions, text_mask=null_text)
    shifted = forward(model, inputs, frame_positions=positions + 7.0, text_mask=null_text)
    assert _close(base, shifted, atol=1e-4)
    moved = forward(model, inputs, frame_positions=torch.tensor([0.0, 1.0, 2.0, 20.0]), text_mask=null_text)
    assert not _close(base, moved, atol=1e-3)


def test_fresh_model_blocks_are_identity_adaln_zero(make_inputs, forward):
    for mode in ("branch", "cross_attention"):
        model = MMDiT(MMDiTConfig.preset("tiny", audio_mode=mode)).eval()
        for block in model.blocks:
            for branch in (block.video, block.text, block.audio):
                if branch is not None:
                    assert torch.count_nonzero(branch.modulation.weight) == 0
                    assert torch.count_nonzero(branch.modulation.bias) == 0
        pairs = []
        hooks = [b.register_forward_hook(lambda mod, args, out: pairs.append((args[:3], out))) for b in model.blocks]
        out = forward(model, make_inputs(model.config))
        for h in hooks:
            h.remove()
        for inputs, outputs in pairs:
            for a, b in zip(inputs, outputs):
                assert torch.equal(a, b)
        # The final layer is zero-initialised too: a fresh model predicts zero velocity.
        assert torch.count_nonzero(out) == 0


def test_last_layer_text_and_audio_only_feed_keys_and_values(random_model):
    model = random_model()
    last = model.blocks[-1]
    assert last.text.pre_only and last.audio.pre_only and not last.video.pre_only
    assert not hasattr(last.text, "mlp") and not hasattr(last.audio, "proj")


def test_every_parameter_gets_a_gradient(random_model, make_inputs):
    for mode in ("branch", "cross_attention"):
        model = random_model(audio_mode=mode).train()
        i = make_inputs(model.config)
        out = model(i["x"], i["timestep"], i["text"], i["audio"], frame_positions=i["frame_positions"])
        out.square().mean().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert not missing, f"{mode}: no gradient for {missing}"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_forward_runs_and_is_finite(random_model, make_inputs, dtype):
    model = random_model().to(dtype)
    i = make_inputs(model.config)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    with torch.no_grad():
        out = model(i["x"].to(dtype), i["timestep"], i["text"], i["audio"], frame_positions=i["frame_positions"],
                    text_mask=mask)
    assert out.dtype == dtype and torch.isfinite(out).all()
    ref = random_model()(i["x"], i["timestep"], i["text"], i["audio"], frame_positions=i["frame_positions"],
                         text_mask=mask)
    assert (out.float() - ref).abs().mean() < 0.1 * ref.abs().mean()


def test_input_errors_name_the_problem(random_model, make_inputs, forward):
    model = random_model()
    inputs = make_inputs(model.config)
    with pytest.raises(InputError, match="mask channel"):
        forward(model, inputs, x=inputs["x"][:, :-1])
    with pytest.raises(InputError, match="audio covers 4 latent frames"):
        forward(model, inputs, audio=torch.randn(2, 4, 4, model.config.audio_dim))
    with pytest.raises(InputError, match="frame_positions"):
        forward(model, inputs, frame_positions=torch.arange(2.0))
    with pytest.raises(InputError, match="divisible by the patch size"):
        forward(model, inputs, x=inputs["x"][..., :5])
    with pytest.raises(InputError, match="text_mask"):
        forward(model, inputs, text_mask=torch.ones(2, 5))


def test_temporal_patches_round_trip(random_model, make_inputs, forward):
    model = random_model(patch_size=(2, 2, 2))
    inputs = make_inputs(model.config, frames=4, audio_frames=3)
    out = forward(model, inputs)
    assert out.shape == (2, model.config.latent_channels, 4, 4, 6) and torch.isfinite(out).all()


def test_batching_does_not_change_results_and_inputs_stay_untouched(random_model, make_inputs):
    # B == 1 and B > 1 take different fast paths (fused LayerNorm affine, W @ x^T modulation).
    model = random_model()
    i = make_inputs(model.config, batch=3)
    mask = torch.tensor([[True] * 5, [True, False, True, False, True], [False] * 5])
    copies = {k: v.clone() for k, v in i.items()}
    with torch.no_grad():
        together = model(i["x"], i["timestep"], i["text"], i["audio"], frame_positions=i["frame_positions"],
                         text_mask=mask)
        for b in range(3):
            alone = model(
                i["x"][b : b + 1], i["timestep"][b : b + 1], i["text"][b : b + 1], i["audio"][b : b + 1],
                frame_positions=i["frame_positions"], text_mask=mask[b : b + 1],
            )
            assert _close(together[b : b + 1], alone, atol=1e-5)
    for k, v in copies.items():
        assert torch.equal(v, i[k]), f"forward modified its input {k}"


def test_pooled_text_is_a_global_text_path_that_starts_at_zero_and_ignores_null_text(random_model, make_inputs, forward):
    model = random_model(pooled_text=True)
    assert branch_of_param("text_pool.fc2.weight") == "text"  # taken from the base in stage 2, like the text branch
    inputs = make_inputs(model.config, text_len=6)
    mask = torch.tensor(_MASK)
    base = _masked_output_ignores_hidden_tokens(model, inputs, forward)
    # The path matters: the same weights without it render differently.
    without_pool = MMDiT(dataclasses.replace(model.config, pooled_text=False)).eval()
    without_pool.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("text_pool.")})
    assert not _close(base, forward(without_pool, inputs, text_mask=mask), atol=1e-3)
    # A null prompt adds nothing: the same as the model without the path, and as no text tokens at all.
    null = torch.zeros(2, 6, dtype=torch.bool)
    assert _close(forward(model, inputs, text_mask=null), forward(without_pool, inputs, text_mask=null), atol=1e-6)
    assert _close(forward(model, inputs, text=inputs["text"][:, :0]),
                  forward(without_pool, inputs, text=inputs["text"][:, :0]), atol=1e-6)
    # A fresh path outputs zero: an existing model gaining it renders exactly as before.
    fresh = MMDiT(model.config).eval()
    fresh.load_state_dict({**model.state_dict(), **{k: v for k, v in fresh.state_dict().items()
                                                    if k.startswith("text_pool.")}})
    assert _close(forward(fresh, inputs, text_mask=mask), forward(without_pool, inputs, text_mask=mask), atol=1e-6)
    model.train()
    out = model(inputs["x"], inputs["timestep"], inputs["text"], inputs["audio"],
                frame_positions=inputs["frame_positions"])
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.text_pool.parameters())
