"""What a host (ComfyUI, a benchmark, the training recipe) relies on: ops namespaces, the attention
hook, the standalone JointBlock, and branch-wise parameter names."""

import types

import pytest
import torch
import torch.nn as nn

from omnihuman_core.errors import WeightsError
from omnihuman_core.model import (
    BRANCHES,
    JointBlock,
    MMDiT,
    MMDiTConfig,
    RMSNorm,
    attention_function,
    branch_of_param,
    build_rope,
    default_rope_axes,
    get_attention_function,
    is_audio_branch_param,
    math_attention,
    merge_branches,
    sdpa_attention,
    set_attention_function,
)


def _counting_ops(with_rmsnorm: bool):
    made = {"Linear": 0, "LayerNorm": 0, "RMSNorm": 0}

    class Linear(nn.Linear):
        def __init__(self, *args, **kwargs):
            assert "device" in kwargs and "dtype" in kwargs
            made["Linear"] += 1
            super().__init__(*args, **kwargs)

    class LayerNorm(nn.LayerNorm):
        def __init__(self, *args, **kwargs):
            assert "device" in kwargs and "dtype" in kwargs
            made["LayerNorm"] += 1
            super().__init__(*args, **kwargs)

    ns = dict(Linear=Linear, LayerNorm=LayerNorm)
    if with_rmsnorm:

        class OpsRMSNorm(nn.RMSNorm):
            def __init__(self, *args, **kwargs):
                made["RMSNorm"] += 1
                super().__init__(*args, **kwargs)

        ns["RMSNorm"] = OpsRMSNorm
    return types.SimpleNamespace(**ns), made


@pytest.mark.parametrize("with_rmsnorm", [False, True])
@pytest.mark.parametrize("mode", ["branch", "cross_attention"])
def test_every_linear_and_norm_is_built_through_operations(with_rmsnorm, mode, make_inputs, forward):
    ops, made = _counting_ops(with_rmsnorm)
    model = MMDiT(MMDiTConfig.preset("tiny", audio_mode=mode), operations=ops)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears and all(isinstance(m, ops.Linear) for m in linears)
    assert made["Linear"] == len(linears)
    layer_norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert made["LayerNorm"] == len(layer_norms) and all(isinstance(m, ops.LayerNorm) for m in layer_norms)
    if with_rmsnorm:
        rms = [m for m in model.modules() if isinstance(m, nn.RMSNorm)]
        assert made["RMSNorm"] == len(rms) > 0
    else:
        assert any(isinstance(m, RMSNorm) for m in model.modules())  # our fallback
    assert torch.isfinite(forward(model, make_inputs(model.config))).all()


def test_attention_function_is_replaceable_and_restored(random_model, make_inputs, forward):
    model = random_model()
    inputs = make_inputs(model.config)
    reference = forward(model, inputs)
    calls = []

    def spy(q, k, v, mask=None):
        calls.append(q.shape)
        return math_attention(q, k, v, mask)

    with attention_function(spy):
        assert get_attention_function() is spy
        out = forward(model, inputs)
    assert get_attention_function() is sdpa_attention
    assert len(calls) == model.config.depth
    assert torch.allclose(out, reference, atol=1e-5)

    previous = set_attention_function(spy)
    try:
        calls.clear()
        forward(random_model(audio_mode="cross_attention"), inputs)
        assert len(calls) == 2 * model.config.depth  # joint + audio cross-attention per layer
    finally:
        set_attention_function(previous)
    assert get_attention_function() is sdpa_attention


def test_math_attention_matches_sdpa_with_a_key_mask():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=g) for _ in range(3))
    mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    mask[1, ..., 4:] = False
    assert torch.allclose(math_attention(q, k, v, mask), sdpa_attention(q, k, v, mask), atol=1e-5)


def test_joint_block_standalone_with_precomputed_rope():
    hidden, heads = 64, 4
    block = JointBlock(hidden, heads, 4.0, operations=nn, device=None, dtype=torch.float32)
    video, text, audio = torch.randn(2, 2 * 3 * 4, hidden), torch.randn(2, 5, hidden), torch.randn(2, 8, hidden)
    cond = torch.randn(2, hidden)
    rope = build_rope(torch.arange(2.0), (3, 4), 5, 2, 4, default_rope_axes(hidden // heads))
    with torch.no_grad():
        v, t, a = block(video, text, audio, cond, rope)
        assert v.shape == video.shape and t.shape == text.shape and a.shape == audio.shape
        # Random modulation: the block now mixes streams; inputs are never modified in place.
        before = video.clone()
        nn.init.normal_(block.video.modulation.weight, std=0.1)
        v2, _, _ = block(video, text, audio, cond, rope)
        assert torch.equal(video, before) and not torch.allclose(v2, video)
        v3, _, _ = block(video, text, audio, cond, None)  # no RoPE at all is allowed too
        assert v3.shape == video.shape


def test_every_parameter_has_a_branch_and_merge_takes_audio_from_stage_one(random_model):
    for mode in ("branch", "cross_attention"):
        model = random_model(audio_mode=mode)
        names = [n for n, _ in model.named_parameters()]
        assert {branch_of_param(n) for n in names} == set(BRANCHES)
        assert sum(len(model.branch_state_dict(b)) for b in BRANCHES) == len(model.state_dict())
        assert all(is_audio_branch_param(n) == (n.startswith("audio_embed.") or ".audio" in n) for n in names)

    base = random_model(seed=1).state_dict()
    stage1 = random_model(seed=2).state_dict()
    merged = merge_branches(base, stage1)
    assert merged.keys() == base.keys()
    for name, value in merged.items():
        source = stage1 if is_audio_branch_param(name) else base
        assert value is source[name]
    assert any(is_audio_branch_param(n) for n in merged) and any(not is_audio_branch_param(n) for n in merged)
    # A text+video base without an audio branch works too; the result loads strictly.
    text_video_only = {k: v for k, v in base.items() if not is_audio_branch_param(k)}
    random_model().load_state_dict(merge_branches(text_video_only, stage1), strict=True)
    with pytest.raises(WeightsError, match="audio-branch"):
        merge_branches(base, text_video_only)


def test_branch_parameters_cover_the_model(random_model):
    model = random_model()
    ids = {id(p) for b in BRANCHES for p in model.branch_parameters(b)}
    assert ids == {id(p) for p in model.parameters()}


def test_cpu_allocator_tuning_is_opt_in_and_safe():
    import os
    import subprocess
    import sys
    from pathlib import Path

    # In a child process: the switch is process-wide and must not leak into the test session.
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    code = "from omnihuman_core.model.perf import tune_cpu_allocator as t; print(t())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root, env=env)
    assert out.returncode == 0 and out.stdout.strip() in ("True", "False")


def test_vector_linear_fast_path_equals_the_linear():
    from omnihuman_core.model.layers import vector_linear

    for bias in (True, False):
        lin = nn.Linear(24, 40, bias=bias)
        for batch in (1, 2, 5, 16, 17):
            x = torch.randn(batch, 24)
            assert torch.allclose(vector_linear(lin, x), lin(x), atol=1e-5)
            assert vector_linear(lin, x).is_contiguous()
