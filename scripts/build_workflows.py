"""Build workflows/*.json in ComfyUI's real frontend from the specs below.

    COMFYUI_PATH=/path/to/ComfyUI python scripts/build_workflows.py

Starts that ComfyUI with the pack (throw-away base directory), then scripts/build_workflows.mjs
creates each workflow's nodes in Chromium through the frontend's own LiteGraph, so widgets come
from the live node definitions, and saves the graph exactly as the editor saves it. Before writing,
every file is checked: it loads back unchanged, our UI -> API conversion equals the frontend's
graphToPrompt, and the node/widget validation of tests/workflows passes. Needs Node, Chromium and
playwright-core (see scripts/comfy_page.mjs); CI does not run this, it checks the files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfyui_harness import (PACK_DIR, ComfyUIServer, copy_inputs, demo_files_present, make_tiny_models,  # noqa: E402
                             prepare_base_dir)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from omnihuman_core.synth.examples import example_subject  # noqa: E402
from workflow_format import FRONTEND_ONLY_NODES, check_workflow, input_order, ui_to_api, widget_values  # noqa: E402

OUT_DIR = PACK_DIR / "workflows"
IMAGE, SPEECH, MINUTE = "character.png", "speech.wav", "speech_minute.wav"
# Workflow 1's prompts open with the example character's description, as the demo model's captions do.
EXAMPLE_SUBJECT = example_subject("human")
# A fixed seed: queueing again after Cancel resumes the finished segments (a new seed starts over).
FIXED_SEED = {"seed": 0, "control_after_generate": "fixed"}
# Room under the widgets for the preview the node shows while it renders (else it covers the node below).
CHAINER_HEIGHT = 520
GROUP_INPUTS, GROUP_SYSTEM2, GROUP_SYSTEM1, GROUP_OUT = "#3f5159", "#8A8", "#88A", "#a1309b"


def node(key, type_, col, widgets=None, **extra) -> dict:
    return {"key": key, "type": type_, "col": col, "widgets": widgets or {}, **extra}


def note(key, col, text, width=420, height=220, **extra) -> dict:
    return node(key, "MarkdownNote", col, {"text": text}, width=width, height=height, title="Read me", **extra)


# ---- the shared pieces ----------------------------------------------------------------------------

def inputs(col, audio=SPEECH, prompt=None):
    return [
        # Fixed size: the image preview loads after layout and would push the node into its neighbour.
        node("image", "LoadImage", col, {"image": IMAGE}, title="Reference image", width=320, height=340),
        node("audio", "LoadAudio", col, {"audio": audio}, title="Speech or singing"),
    ]


def model_nodes(col):
    return [
        node("model", "OmniHumanModelLoader", col, width=380),
        node("features", "OmniHumanAudioEncoder", col, width=380),
    ]


def model_links():
    return [
        ("audio", "AUDIO", "features", "audio"),
        ("model", "OMNIHUMAN_MODEL", "features", "model"),
    ]


def system2_links():
    """Image and audio into the Analyzer, its analysis (with the audio and the model's grid) into the Planner."""
    return [
        ("image", "IMAGE", "analyzer", "image"),
        ("audio", "AUDIO", "analyzer", "audio"),
        ("analyzer", "OMNIHUMAN_ANALYSIS", "planner", "analysis"),
        ("audio", "AUDIO", "planner", "audio"),
        ("model", "OMNIHUMAN_MODEL", "planner", "model"),
    ]


def render_nodes(col, prefix):
    return [
        node("chainer", "OmniHumanSegmentChainer", col, FIXED_SEED, width=380, height=CHAINER_HEIGHT),
        node("video", "CreateVideo", col + 1),
        node("save", "SaveVideo", col + 1, {"filename_prefix": prefix}),
    ]


def render_links(schedule_from, images_from=("chainer", 0)):
    return [
        ("model", "OMNIHUMAN_MODEL", "chainer", "model"),
        ("image", "IMAGE", "chainer", "image"),
        ("features", "OMNIHUMAN_AUDIO", "chainer", "audio"),
        (schedule_from, "OMNIHUMAN_SCHEDULE", "chainer", "schedule"),
        (images_from[0], images_from[1], "video", "images"),
        ("chainer", 1, "video", "audio"),
        ("chainer", 2, "video", "fps"),
        ("video", "VIDEO", "save", "video"),
    ]


# ---- the four workflows -----------------------------------------------------------------------------

def workflow_1() -> dict:
    text = ("## Image + audio -> video (offline planner)\n\n"
            "Runs with the pack's own demo model files (`models/demo/`), no network.\n\n"
            f"1. Put a face image and a speech clip in `ComfyUI/input/` (the pack's `example_inputs/{IMAGE}` and "
            f"`example_inputs/{SPEECH}` work) and pick them in the two load nodes.\n"
            "2. Write what the character does in the Analyzer's prompt, opening with who acts: the demo "
            "model was trained on captions that describe the character first, and moves more with them.\n"
            "3. Queue. The offline Planner plans one shot per segment of the model (speaking or listening from "
            "the audio, actions from the prompt); the Segment Chainer renders them one after another; the video "
            "is as long as the audio.\n\n"
            "The Sampler at the bottom renders only the first segment: a quick look before the whole clip.")
    nodes = [
        *inputs(0), note("readme", 0, text, height=280),
        *model_nodes(1),
        node("analyzer", "OmniHumanAnalyzer", 1, {"prompt": f"{EXAMPLE_SUBJECT} greets the viewer warmly, then waves."}, width=380),
        node("planner", "OmniHumanPlanner", 2, width=380),
        *render_nodes(3, "omnihuman/image_audio"),
        node("sampler", "OmniHumanSampler", 2, {"prompt": f"{EXAMPLE_SUBJECT} greets the viewer warmly.", **FIXED_SEED}, width=380,
             title="First segment only (preview)"),
        node("preview", "PreviewImage", 3, width=380, height=380),
    ]
    links = [
        *model_links(),
        *system2_links(),
        *render_links("planner"),
        ("model", "OMNIHUMAN_MODEL", "sampler", "model"),
        ("image", "IMAGE", "sampler", "image"),
        ("features", "OMNIHUMAN_AUDIO", "sampler", "audio"),
        ("sampler", "IMAGE", "preview", "images"),
    ]
    return {"name": "01_image_audio_to_video", "nodes": nodes, "links": links, "groups": []}


def workflow_2() -> dict:
    text = ("## The full System 2 path\n\n"
            "LLM -> Analyzer -> Planner -> Schedule Editor -> Segment Chainer (with Reflection) -> Upscaler.\n\n"
            "- Point the LLM node at any OpenAI-compatible endpoint (Ollama, vLLM, LM Studio, llama.cpp, OpenAI). "
            "For a key, put the NAME of an environment variable in `api_key_env`; no widget holds a key.\n"
            "- Queue once: the Planner's shots appear in the Schedule Editor. Edit them (text, timing, "
            "add/split/merge) and queue again: only the editor and what follows run again; the LLM is not asked "
            "to plan again.\n"
            "- Reflection looks at the last frames of each segment and revises the shots still to come.\n"
            "- The Upscaler takes the video to a higher resolution (demo upscaler: 2x).")
    nodes = [
        *inputs(0), note("readme", 0, text, height=330),
        *model_nodes(1),
        node("upscaler_model", "OmniHumanUpscalerLoader", 1, width=380),
        node("llm", "OmniHumanLLM", 2, width=380),
        node("analyzer", "OmniHumanAnalyzer", 2, {"prompt": "She reads out good news, smiling, then waves goodbye."},
             width=380),
        node("planner", "OmniHumanPlanner", 2, width=380),
        node("reflection", "OmniHumanReflection", 2, width=380),
        node("editor", "OmniHumanScheduleEditor", 3, width=760, height=560),
        node("chainer", "OmniHumanSegmentChainer", 4, FIXED_SEED, width=380, height=CHAINER_HEIGHT),
        node("upscaler", "OmniHumanUpscaler", 4, FIXED_SEED, width=380),
        node("video", "CreateVideo", 5),
        node("save", "SaveVideo", 5, {"filename_prefix": "omnihuman/system2"}),
    ]
    links = [
        *model_links(),
        ("llm", "OMNIHUMAN_LLM", "analyzer", "llm"),
        ("llm", "OMNIHUMAN_LLM", "planner", "llm"),
        ("llm", "OMNIHUMAN_LLM", "reflection", "llm"),
        *system2_links(),
        ("planner", "OMNIHUMAN_SCHEDULE", "editor", "schedule"),
        *render_links("editor", images_from=("upscaler", 0)),
        ("reflection", "OMNIHUMAN_REFLECTION", "chainer", "reflection"),
        ("upscaler_model", "OMNIHUMAN_UPSCALER", "upscaler", "upscaler"),
        ("chainer", 0, "upscaler", "images"),
        ("model", "OMNIHUMAN_MODEL", "upscaler", "model"),
    ]
    return {"name": "02_system2_full", "nodes": nodes, "links": links, "groups": [
        {"title": "System 2: the LLM agents", "nodes": ["llm", "analyzer", "planner", "reflection"],
         "color": GROUP_SYSTEM2},
        {"title": "Edit the plan", "nodes": ["editor"], "color": GROUP_SYSTEM2},
        {"title": "System 1: render", "nodes": ["chainer", "upscaler"], "color": GROUP_SYSTEM1},
    ]}


def workflow_3() -> dict:
    text = ("## A long video from a minute of audio\n\n"
            f"Put a minute of speech in `ComfyUI/input/{MINUTE}` (or pick any clip up to 10 minutes). "
            "The offline Planner plans one shot per segment of the model; edit them in the Schedule Editor if "
            "you like.\n\n"
            "The Segment Chainer renders the segments in order, each continuing from the last frames of the one "
            "before, with one progress bar over all of them. **Cancel** stops after the current step; finished "
            "segments are kept, and queueing again resumes from there.")
    nodes = [
        *inputs(0, audio=MINUTE), note("readme", 0, text, height=260),
        *model_nodes(1),
        node("analyzer", "OmniHumanAnalyzer", 1, {"prompt": "A calm talk to the camera with small gestures."},
             width=380),
        node("planner", "OmniHumanPlanner", 1, width=380),
        node("editor", "OmniHumanScheduleEditor", 2, width=760, height=560),
        *render_nodes(3, "omnihuman/long"),
    ]
    links = [
        *model_links(),
        *system2_links(),
        ("planner", "OMNIHUMAN_SCHEDULE", "editor", "schedule"),
        *render_links("editor"),
    ]
    return {"name": "03_long_video_one_minute", "nodes": nodes, "links": links, "groups": []}


def workflow_4() -> dict:
    text = ("## The schedule as prompts for a core video model (Wan 2.2 S2V)\n\n"
            "System 2 plans the shots; **Schedule to Prompts** turns them into text that a core ComfyUI video "
            "model renders. Here: Wan 2.2 speech-to-video, 14B. Needs weights you download yourself "
            "(nothing here fetches them):\n\n"
            "- `diffusion_models/wan2.2_s2v_14B_fp8_scaled.safetensors`\n"
            "- `text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors`\n"
            "- `vae/wan_2.1_vae.safetensors`\n"
            "- `audio_encoders/wav2vec2_large_english_fp16.safetensors`\n\n"
            "(Comfy-Org's repackaged Wan 2.1 / 2.2 files.) The pack's demo model is loaded only for the segment "
            "grid the Planner plans on. `prompts` (a list, one per segment) suits per-segment nodes; the joined "
            "`text` feeds one clip as here. `length` is in frames at 16 fps.")
    nodes = [
        *inputs(0), note("readme", 0, text, height=340),
        node("model", "OmniHumanModelLoader", 1, width=380),
        node("analyzer", "OmniHumanAnalyzer", 1, {"prompt": "He sings gently, looking down at the guitar."}, width=380),
        node("planner", "OmniHumanPlanner", 1, width=380),
        node("to_prompts", "OmniHumanScheduleToPrompts", 2, width=380),
        node("clip", "CLIPLoader", 2, {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan"}),
        node("positive", "CLIPTextEncode", 2, title="Positive (from the schedule)", width=380),
        node("negative", "CLIPTextEncode", 2, {"text": "blurry, distorted face, extra fingers, static, low quality"},
             title="Negative", width=380),
        node("unet", "UNETLoader", 3, {"unet_name": "wan2.2_s2v_14B_fp8_scaled.safetensors"}),
        node("shift", "ModelSamplingSD3", 3, {"shift": 8.0}),
        node("vae", "VAELoader", 3, {"vae_name": "wan_2.1_vae.safetensors"}),
        node("wav2vec", "AudioEncoderLoader", 3, {"audio_encoder_name": "wav2vec2_large_english_fp16.safetensors"}),
        node("encode_audio", "AudioEncoderEncode", 3),
        node("s2v", "WanSoundImageToVideo", 4, {"width": 640, "height": 640, "length": 77}),
        node("ksampler", "KSampler", 4, {"steps": 20, "cfg": 6.0, "sampler_name": "uni_pc", "scheduler": "simple",
                                          "control_after_generate": "fixed"}),
        node("decode", "VAEDecode", 4),
        node("video", "CreateVideo", 5, {"fps": 16.0}),
        node("save", "SaveVideo", 5, {"filename_prefix": "omnihuman/wan_s2v"}),
    ]
    links = [
        *system2_links(),
        ("planner", "OMNIHUMAN_SCHEDULE", "to_prompts", "schedule"),
        ("to_prompts", 1, "positive", "text"),
        ("clip", "CLIP", "positive", "clip"),
        ("clip", "CLIP", "negative", "clip"),
        ("unet", "MODEL", "shift", "model"),
        ("wav2vec", "AUDIO_ENCODER", "encode_audio", "audio_encoder"),
        ("audio", "AUDIO", "encode_audio", "audio"),
        ("positive", "CONDITIONING", "s2v", "positive"),
        ("negative", "CONDITIONING", "s2v", "negative"),
        ("vae", "VAE", "s2v", "vae"),
        ("encode_audio", "AUDIO_ENCODER_OUTPUT", "s2v", "audio_encoder_output"),
        ("image", "IMAGE", "s2v", "ref_image"),
        ("shift", "MODEL", "ksampler", "model"),
        ("s2v", 0, "ksampler", "positive"),
        ("s2v", 1, "ksampler", "negative"),
        ("s2v", 2, "ksampler", "latent_image"),
        ("ksampler", "LATENT", "decode", "samples"),
        ("vae", "VAE", "decode", "vae"),
        ("decode", "IMAGE", "video", "images"),
        ("audio", "AUDIO", "video", "audio"),
        ("video", "VIDEO", "save", "video"),
    ]
    return {"name": "04_schedule_to_prompts_wan_s2v", "nodes": nodes, "links": links, "groups": [
        {"title": "System 2: plan", "nodes": ["model", "analyzer", "planner"], "color": GROUP_SYSTEM2},
        {"title": "Wan 2.2 S2V (core nodes, your weights)", "nodes": ["unet", "shift", "vae", "wav2vec", "encode_audio",
                                                                        "s2v", "ksampler", "decode"], "color": GROUP_SYSTEM1},
    ]}


SPECS = [workflow_1, workflow_2, workflow_3, workflow_4]
# Combos listing files that the build server does not have (the Wan weights): any name is accepted here;
# tests/workflows checks their form.
ANY_FILE = {("UNETLoader", "unet_name"): r".+", ("CLIPLoader", "clip_name"): r".+", ("VAELoader", "vae_name"): r".+",
            ("AudioEncoderLoader", "audio_encoder_name"): r".+", ("LoadAudio", "audio"): r".+",
            ("LoadImage", "image"): r".+"}


def _strip(prompt: dict, object_info: dict) -> dict:
    """class_type and the inputs the node defines (the frontend also sends UI-only ones, e.g. audioUI)."""
    out = {}
    for k, v in prompt.items():
        known = {name for name, _ in input_order(object_info[v["class_type"]])}
        out[k] = {"class_type": v["class_type"], "inputs": {n: x for n, x in v["inputs"].items() if n in known}}
    return out


def _graph(workflow: dict, object_info: dict) -> dict:
    """What must survive a save/load round trip: nodes (type, input widget values, position) and links.

    (An upload button's saved value may go from "" to null on reload; it is never sent.)
    """
    def values(n):
        if n["type"] in object_info:
            return json.dumps(widget_values(n, object_info[n["type"]]), sort_keys=True)
        return json.dumps(n.get("widgets_values"))

    return {
        "nodes": sorted((n["id"], n["type"], values(n), tuple(n["pos"])) for n in workflow["nodes"]),
        "links": sorted(tuple(link[:6]) for link in workflow["links"]),
    }


def finish(name: str, result: dict, object_info: dict) -> dict:
    """Check one built workflow and make its volatile fields reproducible."""
    wf = result["workflow"]
    problems = check_workflow(wf, object_info, ANY_FILE)
    if problems:
        raise SystemExit(f"{name}: invalid\n" + "\n".join(problems))
    ours = _strip(ui_to_api(wf, object_info), object_info)
    theirs = _strip(result["output"], object_info)
    if ours != theirs:
        raise SystemExit(f"{name}: ui_to_api differs from the frontend's graphToPrompt:\n"
                         f"ours   {json.dumps(ours, sort_keys=True)[:3000]}\ntheirs {json.dumps(theirs, sort_keys=True)[:3000]}")
    if _graph(result["reloaded"]["workflow"], object_info) != _graph(wf, object_info):
        raise SystemExit(f"{name}: the saved workflow does not load back unchanged")
    if _strip(result["reloaded"]["output"], object_info) != theirs:
        raise SystemExit(f"{name}: the reloaded workflow queues a different prompt")
    wf["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://github.com/omnihuman-comfyui/workflows/{name}"))
    wf["revision"] = 0
    return wf


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"))
    ap.add_argument("--out", default=str(OUT_DIR))
    ap.add_argument("--only", nargs="*", help="workflow names to build (default: all)")
    args = ap.parse_args(argv)
    if not args.comfyui:
        ap.error("give --comfyui or set COMFYUI_PATH")
    specs = [f() for f in SPECS]
    if args.only:
        specs = [s for s in specs if s["name"] in args.only]
    with tempfile.TemporaryDirectory(prefix="omnihuman-build-") as tmp:
        base = prepare_base_dir(Path(tmp) / "base")
        if not demo_files_present():
            make_tiny_models(base / "models" / "omnihuman" / "demo")
        copy_inputs(base, {IMAGE: PACK_DIR / "example_inputs" / IMAGE, SPEECH: PACK_DIR / "example_inputs" / SPEECH,
                           MINUTE: PACK_DIR / "example_inputs" / SPEECH})
        spec_path, result_path = Path(tmp) / "specs.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(specs))
        with ComfyUIServer(args.comfyui, base) as server:
            info = server.object_info()
            proc = subprocess.run(["node", str(PACK_DIR / "scripts" / "build_workflows.mjs"), server.url,
                                   str(spec_path), str(result_path)], cwd=PACK_DIR)
            if proc.returncode != 0:
                print(server.log_tail(), file=sys.stderr)
                return proc.returncode
        result = json.loads(result_path.read_text())
    # (404s of an empty user folder's settings files are the frontend's business.)
    errors = [e for e in result["errors"] if not e.startswith("Failed to load resource")]
    if errors:
        print("browser console errors:\n  " + "\n  ".join(errors), file=sys.stderr)
    out = Path(args.out)
    for spec in specs:
        wf = finish(spec["name"], result["results"][spec["name"]], info)
        path = out / f"{spec['name']}.json"
        path.write_text(json.dumps(wf, indent=2, ensure_ascii=False) + "\n")
        real = [n for n in wf["nodes"] if n["type"] not in FRONTEND_ONLY_NODES]
        print(f"wrote {path.relative_to(PACK_DIR)}: {len(real)} nodes, {len(wf['links'])} links")
    return 0


if __name__ == "__main__":
    sys.exit(main())
