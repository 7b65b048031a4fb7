"""Character specs: seeded, JSON round trip, varied, with a fixed-size identity vector."""

import json

import numpy as np
import pytest

from omnihuman_core.errors import InputError
from omnihuman_core.synth import IDENTITY_DIM, KINDS, CharacterSpec, describe, identity_vector, sample_character


def test_same_seed_same_character():
    assert sample_character(42) == sample_character(42)
    assert sample_character(42) != sample_character(43)


def test_json_round_trip():
    for seed in range(20):
        spec = sample_character(seed)
        back = CharacterSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
        assert back == spec
        assert np.array_equal(identity_vector(back), identity_vector(spec))


def test_variety_and_kinds():
    specs = [sample_character(s) for s in range(200)]
    assert {s.kind for s in specs} == set(KINDS)
    assert len({s.hair_style for s in specs if s.kind == "human"}) >= 5
    assert len({s.background for s in specs}) >= 4
    vecs = np.stack([identity_vector(s) for s in specs])
    assert vecs.shape == (200, IDENTITY_DIM) and vecs.dtype == np.float32
    assert len({v.tobytes() for v in vecs}) == 200  # every identity distinct


def test_forced_kind_and_description():
    assert "robot" in describe(sample_character(1, "robot"))
    assert "cat" in describe(sample_character(1, "cat"))
    assert describe(sample_character(1, "human")).startswith("a cartoon person")
    with pytest.raises(InputError, match="kind"):
        sample_character(1, "dragon")


def test_bad_spec_fields():
    d = sample_character(3).to_dict()
    with pytest.raises(InputError, match="unknown fields"):
        CharacterSpec.from_dict(dict(d, wings=2))
    with pytest.raises(InputError, match="hair_style"):
        CharacterSpec.from_dict(dict(d, hair_style="mohawk"))
