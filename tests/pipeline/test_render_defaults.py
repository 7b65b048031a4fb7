"""A model file's own render settings (metadata `render_defaults`) are what generate uses unless overridden."""

import pytest
import torch

from omnihuman_core.errors import InputError
from omnihuman_core.pipeline.settings import RenderSettings, model_render_defaults
from omnihuman_core.weights import read_metadata, save_safetensors


def _file(tmp_path, extra=None):
    return save_safetensors(tmp_path / "m.safetensors", {"w": torch.zeros(1)}, "mmdit", {}, extra=extra)


def test_defaults_roundtrip_as_json(tmp_path):
    path = _file(tmp_path, {"render_defaults": {"fps": 12.0, "segment_frames": 33, "short_side": 128, "future": 1}})
    assert read_metadata(path)["render_defaults"].startswith("{")
    assert model_render_defaults(path) == {"fps": 12.0, "segment_frames": 33, "short_side": 128}
    s = RenderSettings.for_model(path, steps=7, fps=None)
    assert (s.fps, s.segment_frames, s.short_side, s.steps) == (12.0, 33, 128, 7)
    assert s.shift == RenderSettings().shift


def test_overrides_win_and_no_defaults_means_library_defaults(tmp_path):
    path = _file(tmp_path, {"render_defaults": {"segment_frames": 33}})
    assert RenderSettings.for_model(path, segment_frames=49).segment_frames == 49
    plain = _file(tmp_path / "plain")
    assert RenderSettings.for_model(plain) == RenderSettings()
    assert RenderSettings.for_model(None, steps=3).steps == 3


def test_invalid_override_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="steps"):
        RenderSettings.for_model(_file(tmp_path), steps=0)


def test_another_reference_mode_does_not_keep_the_first_frame_pinned(tmp_path):
    path = _file(tmp_path, {"render_defaults": {"first_frame_from_reference": True}})
    assert RenderSettings.for_model(path).first_frame_from_reference is True
    assert RenderSettings.for_model(path, reference_mode="pseudo_last_frame").first_frame_from_reference is True
    # The ablations' modes condition on the image only their own way ("none": not at all)...
    for mode in ("reference", "none"):
        assert RenderSettings.for_model(path, reference_mode=mode).first_frame_from_reference is False
    # ...unless the caller asks for both.
    assert RenderSettings.for_model(path, reference_mode="none", first_frame_from_reference=True) \
        .first_frame_from_reference is True
