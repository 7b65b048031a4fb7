"""scripts/appearance_free_captions.py: captions without the character's description, for a latent cache."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from omnihuman_core.errors import InputError
from omnihuman_core.synth.character import describe, sample_character
from omnihuman_core.synth.vocab import parse_prompt
from omnihuman_core.synth.world import make_caption, sample_script


def test_keeps_everything_but_the_description(script):
    module = script("appearance_free_captions")
    rng = np.random.default_rng(0)
    for seed in range(200):
        spec = sample_character(seed)
        caption = make_caption(spec, sample_script(rng, 121), bool(seed % 2), rng)
        free = module.appearance_free(caption)
        assert free.startswith("The character ") and describe(spec).lower() not in free.lower()
        assert caption.endswith(free[len("The character "):])
        before, after = parse_prompt(caption), parse_prompt(free)
        assert (after.actions, after.emotion, after.camera, after.speaking) == \
            (before.actions, before.emotion, before.camera, before.speaking)


def test_a_caption_without_an_action_is_kept(script):
    module = script("appearance_free_captions")
    assert module.appearance_free("A red robot, looking happy.") == "A red robot, looking happy."


def test_cache_copy_rewrites_captions_and_leaves_the_source(script, tmp_path):
    module = script("appearance_free_captions")
    src = tmp_path / "cache"
    src.mkdir()
    save_file({"latents": torch.zeros(2, 1)}, str(src / "shard_00000.safetensors"))
    captions = ["A blue robot with a boxy head waves its right hand, looking happy, while talking. Static camera.",
                "A grey bear nods, with a sad face, silently. The camera pans left."]
    manifest = {"complete": True, "settings": {}, "shards": [
        {"file": "shard_00000.safetensors", "windows": [{"clip_id": f"c{i}", "caption": c} for i, c in enumerate(captions)]}]}
    (src / "manifest.json").write_text(json.dumps(manifest))
    assert module.rewrite_cache(src, tmp_path / "free") == 2
    out = json.loads((tmp_path / "free" / "manifest.json").read_text())
    assert [w["caption"] for w in out["shards"][0]["windows"]] == [
        "The character waves its right hand, looking happy, while talking. Static camera.",
        "The character nods, with a sad face, silently. The camera pans left."]
    assert (tmp_path / "free" / "shard_00000.safetensors").read_bytes() == (src / "shard_00000.safetensors").read_bytes()
    assert json.loads((src / "manifest.json").read_text()) == manifest
    with pytest.raises(InputError, match="exists"):
        module.rewrite_cache(src, tmp_path / "free")
    with pytest.raises(InputError, match="no latent cache"):
        module.rewrite_cache(tmp_path / "nothing", tmp_path / "free2")
