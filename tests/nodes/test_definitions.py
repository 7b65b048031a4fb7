"""Every node's definition is valid for ComfyUI: names, categories, tooltips, defaults, and a cheap import."""

import subprocess
import sys
import textwrap

import pytest

from .helpers import PACK_DIR

NODE_IDS = [
    "OmniHumanModelLoader", "OmniHumanUpscalerLoader", "OmniHumanAudioEncoder", "OmniHumanLLM", "OmniHumanAnalyzer",
    "OmniHumanPlanner", "OmniHumanScheduleEditor", "OmniHumanSampler", "OmniHumanSegmentChainer",
    "OmniHumanReflection", "OmniHumanUpscaler", "OmniHumanScheduleToPrompts",
]
CATEGORIES = {"OmniHuman/loaders", "OmniHuman/conditioning", "OmniHuman/system2", "OmniHuman/sampling",
              "OmniHuman/postprocess"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}


def inputs_of(cls):
    spec = cls.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"}
    for group in ("required", "optional"):
        for name, entry in spec.get(group, {}).items():
            yield group, name, entry


def test_every_node_is_registered_with_a_display_name(pack):
    assert list(pack.NODE_CLASS_MAPPINGS) == NODE_IDS
    assert set(pack.NODE_DISPLAY_NAME_MAPPINGS) == set(NODE_IDS)
    assert all(name.startswith("OmniHuman") for name in pack.NODE_DISPLAY_NAME_MAPPINGS.values())
    assert pack.WEB_DIRECTORY == "./web/js"


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_definition_is_valid(pack, node_id):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    assert cls.CATEGORY in CATEGORIES
    assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION) > 40
    assert callable(getattr(cls, cls.FUNCTION))
    n_out = len(cls.RETURN_TYPES)
    assert len(cls.RETURN_NAMES) == n_out and len(cls.OUTPUT_TOOLTIPS) == n_out
    assert len(getattr(cls, "OUTPUT_IS_LIST", (False,) * n_out)) == n_out
    for t in cls.RETURN_TYPES:
        assert t.isupper() and (t.startswith("OMNIHUMAN_") or t in {"IMAGE", "AUDIO", "FLOAT", "STRING"})
    names = []
    for group, name, entry in inputs_of(cls):
        names.append(name)
        kind, options = entry[0], entry[1]
        assert isinstance(options.get("tooltip"), str) and len(options["tooltip"]) > 10, f"{name}: no tooltip"
        if isinstance(kind, list):  # combo: its default is one of its values
            assert kind and options.get("default", kind[0]) in kind, f"{name}: default not in the list"
        elif kind in ("INT", "FLOAT"):
            assert "default" in options
            lo, hi = options.get("min", float("-inf")), options.get("max", float("inf"))
            assert lo <= options["default"] <= hi, f"{name}: default {options['default']} outside {lo}..{hi}"
            assert isinstance(options["default"], int if kind == "INT" else float)
        elif kind in ("STRING", "BOOLEAN"):
            assert "default" in options
        else:  # a socket
            assert kind.isupper() and kind not in WIDGET_TYPES
            assert kind != "OMNIHUMAN_SCHEDULE_EDITOR"  # a widget type, never a socket type
    # The signature takes every input by name (optional ones have defaults).
    import inspect

    params = inspect.signature(getattr(cls, cls.FUNCTION)).parameters
    assert set(names) <= set(params)
    required = set(cls.INPUT_TYPES().get("required", {}))
    for name in set(names) - required:
        assert params[name].default is not inspect.Parameter.empty, f"optional {name} has no default"


def test_no_widget_can_hold_an_api_key(pack):
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        for _, name, entry in inputs_of(cls):
            text = (name + " " + entry[1].get("tooltip", "")).lower()
            if entry[0] == "STRING" and "key" in name.lower():
                assert name == "api_key_env" and "name" in text and "never the key" in text


def test_the_schedule_editor_declares_its_widget(pack):
    spec = pack.NODE_CLASS_MAPPINGS["OmniHumanScheduleEditor"].INPUT_TYPES()["required"]
    assert spec["schedule"][0] == "OMNIHUMAN_SCHEDULE"
    kind, options = spec["schedule_json"]
    assert kind == "STRING" and options["default"] == "" and options["multiline"]
    assert options["widgetType"] == "OMNIHUMAN_SCHEDULE_EDITOR"


def test_missing_demo_files_still_offer_the_default_name(pack, comfy_shim, tmp_path, monkeypatch):
    monkeypatch.setattr(comfy_shim, "FALLBACK_MODEL_PATHS", [tmp_path / "empty"])
    spec = pack.NODE_CLASS_MAPPINGS["OmniHumanModelLoader"].INPUT_TYPES()["required"]
    assert spec["model_name"][0] == ["demo/mmdit.safetensors"]
    assert spec["vae_name"][1]["default"] == "demo/vae.safetensors"


def test_combos_list_files_by_kind(pack):
    spec = pack.NODE_CLASS_MAPPINGS["OmniHumanModelLoader"].INPUT_TYPES()["required"]
    assert spec["model_name"][0] == ["demo/mmdit.safetensors"]
    assert spec["vae_name"][0] == ["demo/vae.safetensors"]
    assert spec["text_encoder_name"][0] == ["demo/text_encoder.safetensors"]
    up = pack.NODE_CLASS_MAPPINGS["OmniHumanUpscalerLoader"].INPUT_TYPES()["required"]["upscaler_name"]
    assert up[0] == ["demo/upscaler.safetensors"]


def test_importing_the_pack_is_cheap_and_needs_no_optional_dependency():
    # A fresh interpreter where the optional dependencies cannot be imported at all.
    code = textwrap.dedent(f"""
        import importlib.util, sys
        for name in ("openai", "transformers", "av", "torchaudio", "einops"):
            sys.modules[name] = None  # makes `import name` fail
        spec = importlib.util.spec_from_file_location("pack", {str(PACK_DIR / '__init__.py')!r},
                                                      submodule_search_locations=[{str(PACK_DIR)!r}])
        pack = importlib.util.module_from_spec(spec)
        sys.modules["pack"] = pack
        spec.loader.exec_module(pack)
        for cls in pack.NODE_CLASS_MAPPINGS.values():
            cls.INPUT_TYPES()
        assert "comfy" not in sys.modules
        assert sys.path.index({str(PACK_DIR)!r}) > 0  # appended: never shadows ComfyUI's modules
        print(len(pack.NODE_CLASS_MAPPINGS))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "12"


def test_foreign_files_stay_out_of_the_model_combos_and_encoder_folders_are_offered(pack, comfy_shim, model_folder,
                                                                                   tmp_path, monkeypatch):
    import torch
    from safetensors.torch import save_file

    w2v = tmp_path / "extra" / "audio_encoders" / "wav2vec2-base"
    w2v.mkdir(parents=True)
    (w2v / "config.json").write_text('{"model_type": "wav2vec2"}')
    save_file({"w": torch.zeros(1)}, str(w2v / "model.safetensors"))  # a transformers file: no omnihuman kind
    monkeypatch.setattr(comfy_shim, "FALLBACK_MODEL_PATHS", [model_folder, tmp_path / "extra"])
    spec = pack.NODE_CLASS_MAPPINGS["OmniHumanModelLoader"].INPUT_TYPES()["required"]
    assert spec["model_name"][0] == ["demo/mmdit.safetensors"]
    encoders = pack.NODE_CLASS_MAPPINGS["OmniHumanAudioEncoder"].INPUT_TYPES()["required"]["encoder"][0]
    assert encoders == ["mel (built-in)", "audio_encoders/wav2vec2-base"]
