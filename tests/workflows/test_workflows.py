"""The shipped workflows (workflows/*.json, UI format) against the pack's node definitions and the
recorded core nodes (core_nodes.json, from ComfyUI 0.8 by scripts/record_core_nodes.py).

Every node type exists, every widget value is valid for its input (numbers in range, combo values
among the options, model files named as the pack ships them), links join matching socket types,
every required socket is connected, the API form can be derived, and every pack node is used.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from comfyui_harness import load_pack  # noqa: E402
from workflow_format import (FRONTEND_ONLY_NODES, check_workflow, definition_from_class, input_order,  # noqa: E402
                             ui_to_api, widget_kind, widget_layout, widget_values)

WORKFLOW_DIR = ROOT / "workflows"
WORKFLOWS = {p.name: json.loads(p.read_text()) for p in sorted(WORKFLOW_DIR.glob("*.json"))}
CORE = json.loads((Path(__file__).with_name("core_nodes.json")).read_text())
MODEL = r"demo/(mmdit|vae|text_encoder|upscaler)\.safetensors"
# Combos that list files on the user's machine: the value must look like such a file.
FILE_INPUTS = {
    ("LoadImage", "image"): r"[\w\-. ]+\.(png|jpg|jpeg|webp)",
    ("LoadAudio", "audio"): r"[\w\-. ]+\.(wav|mp3|flac|ogg|m4a)",
    ("UNETLoader", "unet_name"): r"[\w\-./]+\.safetensors",
    ("CLIPLoader", "clip_name"): r"[\w\-./]+\.safetensors",
    ("VAELoader", "vae_name"): r"[\w\-./]+\.safetensors",
    ("AudioEncoderLoader", "audio_encoder_name"): r"[\w\-./]+\.safetensors",
    ("OmniHumanModelLoader", "model_name"): MODEL,
    ("OmniHumanModelLoader", "vae_name"): MODEL,
    ("OmniHumanModelLoader", "text_encoder_name"): MODEL,
    ("OmniHumanUpscalerLoader", "upscaler_name"): MODEL,
}


@pytest.fixture(scope="module")
def pack_defs() -> dict:
    pack = load_pack()
    names = getattr(pack, "NODE_DISPLAY_NAME_MAPPINGS", {})
    return {k: definition_from_class(k, cls, names.get(k)) for k, cls in pack.NODE_CLASS_MAPPINGS.items()}


@pytest.fixture(scope="module")
def defs(pack_defs) -> dict:
    overlap = set(pack_defs) & set(CORE["nodes"])
    assert not overlap, f"pack node ids clash with core ones: {overlap}"
    return {**CORE["nodes"], **pack_defs}


def by_type(workflow: dict, ntype: str) -> list[dict]:
    return [n for n in workflow["nodes"] if n["type"] == ntype]


def linked(workflow: dict, node: dict, name: str) -> dict | None:
    """The node feeding input `name` of `node`, or None."""
    inp = next((i for i in node.get("inputs") or [] if i["name"] == name), None)
    if inp is None or inp.get("link") is None:
        return None
    link = next(link for link in workflow["links"] if link[0] == inp["link"])
    return next(n for n in workflow["nodes"] if n["id"] == link[1])


def test_the_four_workflows_exist():
    assert sorted(WORKFLOWS) == ["01_image_audio_to_video.json", "02_system2_full.json",
                                 "03_long_video_one_minute.json", "04_schedule_to_prompts_wan_s2v.json"]


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_workflow_is_valid_against_the_node_definitions(name, defs):
    problems = check_workflow(WORKFLOWS[name], defs, FILE_INPUTS)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_workflow_is_the_ui_format_the_editor_saves(name):
    wf = WORKFLOWS[name]
    assert wf["version"] == 0.4
    assert wf["last_node_id"] >= max(n["id"] for n in wf["nodes"])
    assert wf["last_link_id"] >= max((link[0] for link in wf["links"]), default=0)
    for node in wf["nodes"]:
        assert {"id", "type", "pos", "size", "mode", "order", "inputs", "outputs"} <= set(node), node["type"]
        assert node["mode"] == 0, f"{name}: node {node['id']} ({node['type']}) is muted or bypassed"
    assert "ds" in wf["extra"], "no saved view; was this file saved by the frontend?"


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_api_form_has_every_required_input(name, defs):
    prompt = ui_to_api(WORKFLOWS[name], defs)
    real = [n for n in WORKFLOWS[name]["nodes"] if n["type"] not in FRONTEND_ONLY_NODES]
    assert len(prompt) == len(real)
    for node_id, entry in prompt.items():
        required = (defs[entry["class_type"]]["input"].get("required") or {})
        missing = sorted(set(required) - set(entry["inputs"]))
        assert not missing, f"{name}: node {node_id} ({entry['class_type']}) lacks {missing}"


def test_every_pack_node_is_in_a_workflow(pack_defs):
    used = set().union(*({n["type"] for n in wf["nodes"]} for wf in WORKFLOWS.values()))
    assert not sorted(set(pack_defs) - used)


def test_core_record_lists_exactly_the_core_nodes_used(pack_defs):
    used = set().union(*({n["type"] for n in wf["nodes"]} for wf in WORKFLOWS.values()))
    core_used = used - set(pack_defs) - FRONTEND_ONLY_NODES
    assert sorted(CORE["nodes"]) == sorted(core_used), "re-run scripts/record_core_nodes.py"
    assert str(CORE["comfyui_version"]).startswith("0.8")


def test_readme_describes_every_workflow():
    readme = (WORKFLOW_DIR / "README.md").read_text()
    for name in WORKFLOWS:
        assert name in readme, f"workflows/README.md does not mention {name}"


# ---- what each workflow is for -----------------------------------------------------------------

def test_workflow_1_plans_offline(defs):
    wf = WORKFLOWS["01_image_audio_to_video.json"]
    assert not by_type(wf, "OmniHumanLLM")
    (planner,) = by_type(wf, "OmniHumanPlanner")
    assert linked(wf, planner, "llm") is None
    (chainer,) = by_type(wf, "OmniHumanSegmentChainer")
    assert linked(wf, chainer, "schedule")["type"] in ("OmniHumanPlanner", "OmniHumanScheduleEditor")
    (save,) = by_type(wf, "SaveVideo")
    assert linked(wf, save, "video")["type"] == "CreateVideo"



def test_workflow_1_prompts_describe_the_example_character():
    # The demo model moves more with prompts that open with the character's description (its captions do).
    from omnihuman_core.synth.examples import example_subject

    wf = WORKFLOWS["01_image_audio_to_video.json"]
    for node_type in ("OmniHumanAnalyzer", "OmniHumanSampler"):
        (node,) = by_type(wf, node_type)
        assert node["widgets_values"][0].startswith(example_subject("human") + " ")


def test_workflow_2_is_the_full_system2_path(defs):
    wf = WORKFLOWS["02_system2_full.json"]
    (llm,) = by_type(wf, "OmniHumanLLM")
    values = widget_values(llm, defs["OmniHumanLLM"])
    assert not any(isinstance(v, str) and v.startswith("sk-") for v in values.values()), "a key in a widget"
    for ntype in ("OmniHumanAnalyzer", "OmniHumanPlanner", "OmniHumanReflection"):
        (node,) = by_type(wf, ntype)
        assert linked(wf, node, "llm")["type"] == "OmniHumanLLM", ntype
    (planner,) = by_type(wf, "OmniHumanPlanner")
    assert linked(wf, planner, "analysis")["type"] == "OmniHumanAnalyzer"
    (editor,) = by_type(wf, "OmniHumanScheduleEditor")
    assert linked(wf, editor, "schedule")["type"] == "OmniHumanPlanner"
    assert widget_values(editor, defs["OmniHumanScheduleEditor"])["schedule_json"] == ""  # no edits shipped
    (chainer,) = by_type(wf, "OmniHumanSegmentChainer")
    assert linked(wf, chainer, "schedule")["type"] == "OmniHumanScheduleEditor"
    assert linked(wf, chainer, "reflection")["type"] == "OmniHumanReflection"
    (upscaler,) = by_type(wf, "OmniHumanUpscaler")
    assert linked(wf, upscaler, "images")["type"] == "OmniHumanSegmentChainer"
    (create,) = by_type(wf, "CreateVideo")
    assert linked(wf, create, "images")["type"] == "OmniHumanUpscaler"


def test_workflow_3_renders_a_minute_of_audio(defs):
    wf = WORKFLOWS["03_long_video_one_minute.json"]
    (audio,) = by_type(wf, "LoadAudio")
    assert widget_values(audio, defs["LoadAudio"])["audio"] == "speech_minute.wav"
    (chainer,) = by_type(wf, "OmniHumanSegmentChainer")
    assert linked(wf, chainer, "schedule") is not None


def test_workflow_4_feeds_a_core_video_model(defs):
    wf = WORKFLOWS["04_schedule_to_prompts_wan_s2v.json"]
    (to_prompts,) = by_type(wf, "OmniHumanScheduleToPrompts")
    text_slot = defs["OmniHumanScheduleToPrompts"]["output_name"].index("text")
    fed = [link for link in wf["links"] if link[1] == to_prompts["id"]]
    assert fed and all(link[2] == text_slot for link in fed), "the joined text, not the per-segment list, is the prompt"
    (target,) = [n for n in wf["nodes"] if n["id"] == fed[0][3]]
    assert target["type"] == "CLIPTextEncode"
    (s2v,) = by_type(wf, "WanSoundImageToVideo")
    assert linked(wf, s2v, "positive")["id"] == target["id"]
    assert linked(wf, s2v, "audio_encoder_output")["type"] == "AudioEncoderEncode"


# ---- the format rules, as observed in ComfyUI frontend 1.35.9 ------------------------------------

def test_layout_rules_match_the_frontend():
    core = CORE["nodes"]
    if "KSampler" in core:
        assert [s.name for s in widget_layout(core["KSampler"])][:3] == ["seed", "control_after_generate", "steps"]
    if "LoadAudio" in core:
        assert [s.kind for s in widget_layout(core["LoadAudio"])] == ["COMBO", "audio_ui", "upload"]
    if "LoadImage" in core:
        assert [s.kind for s in widget_layout(core["LoadImage"])] == ["COMBO", "upload"]
    # An INT named seed gets the control value even without the option (RandomCropImages in 0.8).
    seed_only = {"input": {"required": {"seed": ["INT", {"default": 0}]}}}
    assert [s.name for s in widget_layout(seed_only)] == ["seed", "control_after_generate"]
    no_control = {"input": {"required": {"seed": ["INT", {"control_after_generate": False}]}}}
    assert [s.name for s in widget_layout(no_control)] == ["seed"]
    forced = {"input": {"required": {"text": ["STRING", {"forceInput": True}], "n": ["FLOAT", {}]}}}
    assert [s.name for s in widget_layout(forced)] == ["n"]
    assert widget_kind(["OMNIHUMAN_SCHEDULE", {}]) is None
    assert [n for n, _ in input_order({"input": {"required": {"b": ["INT"], "a": ["INT"]}, "optional": {"c": ["INT"]}},
                                       "input_order": {"required": ["a", "b"], "optional": ["c"]}})] == ["a", "b", "c"]


def test_checker_catches_broken_workflows(defs):
    """The validation itself can fail: a wrong combo value, a bad link and a missing widget are reported."""
    wf = json.loads(json.dumps(WORKFLOWS["01_image_audio_to_video.json"]))
    (save,) = by_type(wf, "SaveVideo")
    save["widgets_values"][1] = "webm-not-an-option"
    (chainer,) = by_type(wf, "OmniHumanSegmentChainer")
    chainer["widgets_values"] = chainer["widgets_values"][:-1]
    first_link = next(link for link in wf["links"])
    first_link[5] = "NOT_A_TYPE"
    problems = "\n".join(check_workflow(wf, defs, FILE_INPUTS))
    assert "webm-not-an-option" in problems
    assert "widget values" in problems
    assert "NOT_A_TYPE" in problems
