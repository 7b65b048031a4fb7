"""scripts/action_token.py: one extra text token per prompt carrying its action, for the action diagnostic."""

import pytest
import torch

from omnihuman_core.synth.vocab import ACTIONS
from omnihuman_core.text.base import TextEncoder
from omnihuman_core.text.builtin import BuiltinTextEncoder


def test_one_token_per_action_at_the_prompt_scale(script):
    module = script("action_token")
    prompts = ["A robot waves its left hand, while talking.", "A robot nods, looking sad.", "", "A cat talks."]
    L, D = 7, 16
    mask = torch.tensor([[True] * 5 + [False] * 2, [True] * 7, [False] * 7, [True] * 3 + [False] * 4])
    features = torch.randn(4, L, D) * 3 * mask[..., None]
    out, out_mask = module.with_action_token(prompts, features, mask)
    assert out.shape == (4, L + 1, D) and out_mask.shape == (4, L + 1)
    assert torch.equal(out[:, :L], features) and torch.equal(out_mask[:, :L], mask)
    # The null prompt gets nothing (as it gets no words); a prompt naming no action reads as idle.
    assert out_mask[:, L].tolist() == [True, True, False, True]
    assert not out[2, L].any()
    for i in (0, 1, 3):
        scale = features[i][mask[i]].norm(dim=-1).mean()
        assert torch.allclose(out[i, L].norm(), scale, rtol=1e-5)
    assert torch.allclose(out[3, L] / out[3, L].norm(), module.action_vector("idle", D))
    assert torch.allclose(out[0, L] / out[0, L].norm(), module.action_vector("wave_left", D))


def test_actions_get_distinct_fixed_vectors(script):
    module = script("action_token")
    vectors = torch.stack([module.action_vector(a, 256) for a in ACTIONS])
    assert torch.equal(vectors, torch.stack([module.action_vector(a, 256) for a in ACTIONS]))
    cos = vectors @ vectors.T
    assert torch.allclose(cos.diagonal(), torch.ones(len(ACTIONS)))
    assert (cos - torch.eye(len(ACTIONS))).abs().max() < 0.3  # near-orthogonal in 256 dims
    with pytest.raises(ValueError, match="unknown action"):
        module.action_vector("juggle", 256)


def test_install_wraps_the_encoders_encode(script, monkeypatch):
    module = script("action_token")
    # install() wraps every TextEncoder class imported so far; all are restored after the test.
    for cls in TextEncoder.__subclasses__():
        monkeypatch.setattr(cls, "encode", cls.encode)
    encoder = BuiltinTextEncoder.from_config("tiny")
    prompts = ["A robot points to its right, while talking.", ""]
    plain, plain_mask = encoder.encode(prompts)
    module.install()
    module.install()  # idempotent: one token, not two
    wrapped, wrapped_mask = encoder.encode(prompts)
    assert wrapped.shape[1] == plain.shape[1] + 1
    assert torch.equal(wrapped[:, :-1], plain) and wrapped_mask[:, -1].tolist() == [True, False]
