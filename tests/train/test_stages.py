"""MM-branch warm-up: what each stage trains, and stage 2's rebuild from the base and stage 1."""

import pytest
import torch

from omnihuman_core.errors import InputError
from omnihuman_core.model import MMDiT, MMDiTConfig
from omnihuman_core.model.mmdit import branch_of_param
from omnihuman_core.text.base import TextEncoder
from omnihuman_core.train.objective import Recipe, flow_matching_loss
from omnihuman_core.train.stages import (
    FULL_SCHEDULE, JOINT_SCHEDULE, STAGES, build_stage2, split_steps, trainable_parameters, trains_text_encoder,
)
from omnihuman_core.weights import load_into

from .helpers import randomized, tiny_text
from .helpers import tiny_model as tiny



def batch(b=2, t=5, hw=4):
    g = torch.Generator().manual_seed(0)
    return {"latents": torch.randn(b, 4, t, hw, hw, generator=g), "last_latent": torch.randn(b, 4, 1, hw, hw, generator=g),
            "reference_latent": torch.randn(b, 4, 1, hw, hw, generator=g), "audio": torch.randn(b, t, 4, 24, generator=g),
            "captions": ["she laughs", "he points left"][:b], "clip_ids": ["a", "b"][:b]}


def branches_of(model, params):
    ids = {id(p) for p in params}
    return {branch_of_param(n) for n, p in model.named_parameters() if id(p) in ids}


@pytest.mark.parametrize("audio_mode", ["branch", "cross_attention"])
def test_stage_parameter_sets(audio_mode):
    model, text = tiny(audio_mode=audio_mode), tiny_text()
    n_text = len(list(text.parameters()))
    n_audio = len(model.branch_parameters("audio"))
    n_all = len(list(model.parameters()))
    assert n_audio > 0

    base = trainable_parameters(model, text, "base")
    assert branches_of(model, base) == {"video", "text", "shared"}
    assert len(base) == n_all - n_audio + n_text  # plus the whole built-in text encoder
    assert not any(p.requires_grad for p in model.branch_parameters("audio"))
    assert all(p.requires_grad for p in text.parameters())

    for stage in ("stage1", "stage2"):
        params = trainable_parameters(model, text, stage)
        assert branches_of(model, params) == {"video", "text", "audio", "shared"}
        assert len(params) == n_all  # every MMDiT parameter, no text-encoder parameter
        assert not any(p.requires_grad for p in text.parameters())
        assert all(p.requires_grad for p in model.parameters())

    joint = trainable_parameters(model, text, "joint")
    assert len(joint) == n_all + n_text


def test_gradients_follow_the_stage():
    """Base: no audio tokens, so the audio branch gets no gradient while the text encoder does; stage 1:
    the audio branch learns and the frozen text encoder gets none."""
    model, text = tiny(), tiny_text()
    trainable_parameters(model, text, "base")
    loss, _ = flow_matching_loss(model, text, batch(), Recipe(p_drop_text=0.0), "base", torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is None for p in model.branch_parameters("audio"))
    assert model.patch_embed.weight.grad.abs().sum() > 0
    assert sum(p.grad.abs().sum() for p in model.branch_parameters("text") if p.grad is not None) > 0
    assert text.token_embedding.weight.grad is not None and text.token_embedding.weight.grad.abs().sum() > 0

    model.zero_grad(set_to_none=True)
    text.zero_grad(set_to_none=True)
    trainable_parameters(model, text, "stage1")
    loss, _ = flow_matching_loss(model, text, batch(), Recipe(p_drop_audio=0.0), "stage1",
                                 torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is not None for p in model.branch_parameters("audio"))
    assert sum(p.grad.abs().sum() for p in model.branch_parameters("audio")) > 0
    assert all(p.grad is None for p in text.parameters())


def test_pretrained_text_encoder_is_never_trained():
    class Pretrained(TextEncoder):
        dim = 32

        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 32)

        def encode(self, prompts, device=None, dtype=None):
            raise AssertionError("not called here")

    enc = Pretrained()
    for stage in STAGES:
        assert not trains_text_encoder(enc, stage)
        params = trainable_parameters(tiny(), enc, stage)
        assert not enc.proj.weight.requires_grad and all(p is not enc.proj.weight for p in params)
    assert trains_text_encoder(tiny_text(), "base") and not trains_text_encoder(tiny_text(), "stage2")


def test_a_given_builtin_text_encoder_is_frozen_in_every_stage():
    """Only a built-in encoder the run builds from scratch trains (base / joint); a pretrained file is frozen,
    as the paper freezes its pretrained text encoder."""
    for stage in STAGES:
        model, text = tiny(), tiny_text()
        assert not trains_text_encoder(text, stage, pretrained=True)
        params = trainable_parameters(model, text, stage, pretrained_text=True)
        assert len(params) == len([p for p in model.parameters() if p.requires_grad])
        assert not any(p.requires_grad for p in text.parameters())
    model, text = tiny(), tiny_text()
    trainable_parameters(model, text, "base", pretrained_text=True)
    loss, _ = flow_matching_loss(model, text, batch(), Recipe(p_drop_text=0.0), "base", torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is None for p in text.parameters())
    assert sum(p.grad.abs().sum() for p in model.branch_parameters("text") if p.grad is not None) > 0


def test_unknown_stage_and_non_mmdit():
    with pytest.raises(InputError, match="stage"):
        trainable_parameters(tiny(), tiny_text(), "stage3")
    with pytest.raises(InputError, match="MMDiT"):
        trainable_parameters(torch.nn.Linear(2, 2), tiny_text(), "base")


def test_build_stage2_takes_each_branch_from_the_right_model():
    cfg = MMDiTConfig.preset("tiny")
    base, stage1 = tiny(seed=1).state_dict(), tiny(seed=2).state_dict()
    merged = build_stage2(base, stage1, cfg)
    assert set(merged) == set(base)
    for k, v in merged.items():
        src = stage1 if branch_of_param(k) == "audio" else base
        assert v is src[k] or torch.equal(v, src[k]), k
    assert any(branch_of_param(k) == "audio" for k in merged)
    model = MMDiT(cfg)
    load_into(model, merged, "stage2 start")  # a valid MMDiT state
    # Without a config the two states are checked against each other.
    assert build_stage2(base, stage1).keys() == merged.keys()


def test_build_stage2_refuses_mismatches():
    cfg = MMDiTConfig.preset("tiny")
    base, stage1 = tiny(seed=1).state_dict(), tiny(seed=2).state_dict()
    cross = tiny(seed=3, audio_mode="cross_attention").state_dict()
    with pytest.raises(InputError, match="stage-1.*audio_mode"):
        build_stage2(base, cross, cfg)
    with pytest.raises(InputError, match="not the same MMDiT"):
        build_stage2(base, cross)
    other = randomized(MMDiT(MMDiTConfig.preset("tiny", hidden=32))).state_dict()
    with pytest.raises(InputError, match="base weights.*shape"):
        build_stage2(other, stage1, cfg)
    missing = dict(base)
    missing.pop("final.linear.weight" if "final.linear.weight" in base else next(iter(base)))
    with pytest.raises(InputError, match="missing"):
        build_stage2(missing, stage1, cfg)
    with pytest.raises(InputError, match="identical to the base"):
        build_stage2(base, base, cfg)
    with pytest.raises(InputError, match="bogus"):  # a config dict with an unknown key
        build_stage2(base, stage1, {**cfg.to_dict(), "bogus": 1})


def test_split_steps():
    for total in (3, 10, 999, 1000, 12345):
        parts = split_steps(FULL_SCHEDULE, total)
        assert sum(n for _, n in parts) == total and all(n >= 1 for _, n in parts)
    assert split_steps(FULL_SCHEDULE, 1000) == [("base", 400), ("stage1", 180), ("stage2", 420)]
    assert split_steps(JOINT_SCHEDULE, 10) == [("base", 4), ("joint", 6)]
    for bad_schedule, total in ((FULL_SCHEDULE, 2), ((("base", 0.5), ("stage1", 0.4)), 100),
                                ((("base", 1.0), ("stage9", 0.0)), 100)):
        with pytest.raises(InputError):
            split_steps(bad_schedule, total)
