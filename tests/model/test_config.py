"""MMDiTConfig: presets, JSON round trip, clear errors; preset sizes."""

import json

import pytest
import torch

from omnihuman_core.errors import InputError
from omnihuman_core.model import PRESETS, MMDiT, MMDiTConfig, default_rope_axes, parameter_counts


def test_presets_exist_and_round_trip_through_json():
    assert set(PRESETS) == {"tiny", "demo", "base"}
    for name in PRESETS:
        cfg = MMDiTConfig.preset(name)
        data = json.loads(json.dumps(cfg.to_dict()))
        again = MMDiTConfig.from_dict(data)
        assert again.to_dict() == cfg.to_dict()
        assert again.resolved_rope_axes == cfg.resolved_rope_axes


def test_from_dict_rejects_unknown_keys_by_name():
    data = MMDiTConfig.preset("tiny").to_dict()
    data["hiden"] = 64
    data["num_experts"] = 8
    with pytest.raises(InputError, match=r"\['hiden', 'num_experts'\]"):
        MMDiTConfig.from_dict(data)


def test_preset_overrides_and_unknown_preset():
    cfg = MMDiTConfig.preset("tiny", depth=3, audio_mode="cross_attention")
    assert cfg.depth == 3 and cfg.audio_mode == "cross_attention" and cfg.hidden == 64
    with pytest.raises(InputError, match="tiny"):
        MMDiTConfig.preset("huge")


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(hidden=65), "divisible by heads"),
        (dict(rope_axes=(10, 10, 10)), "rope_axes"),
        (dict(audio_mode="film"), "audio_mode"),
        (dict(patch_size=(1, 2)), "patch_size"),
    ],
)
def test_invalid_configs_say_what_is_wrong(bad, message):
    with pytest.raises(InputError, match=message):
        MMDiTConfig.preset("tiny", **bad)


def test_default_rope_axes_follow_wan_and_stay_even():
    assert default_rope_axes(128) == (44, 42, 42)
    for head_dim in (8, 16, 32, 64, 96, 128):
        axes = default_rope_axes(head_dim)
        assert sum(axes) == head_dim and all(a % 2 == 0 and a > 0 for a in axes)


def test_tiny_is_under_a_million_parameters():
    model = MMDiT(MMDiTConfig.preset("tiny"))
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


def test_base_builds_on_meta_and_is_billions_of_parameters():
    cfg = MMDiTConfig.preset("base")
    assert (cfg.hidden, cfg.depth, cfg.head_dim) == (3584, 32, 128)
    model = MMDiT(cfg, device=torch.device("meta"))
    assert all(p.is_meta for p in model.parameters())
    counts = parameter_counts(cfg)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert 1e9 < counts["total"] < 1e11
    # The audio branch is as large as the text branch (symmetric), the shared part is tiny.
    assert counts["audio"] > 1e9 and counts["shared"] < 1e8


def test_demo_is_small_enough_for_cpu_training():
    counts = parameter_counts(MMDiTConfig.preset("demo"))
    assert 5e6 < counts["total"] < 6e7
