"""The pack inside a real ComfyUI: it imports cleanly, every node is listed, templates and the widget are served."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from comfyui_harness import IMPORT_FAILURE_MARKERS, PACK_NAME, load_pack

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))


def test_every_pack_node_is_listed(comfy):
    expected = set(load_pack().NODE_CLASS_MAPPINGS)
    info = comfy.object_info
    assert expected, "the pack registers no nodes"
    missing = sorted(expected - set(info))
    assert not missing, f"not in /object_info: {missing}\n{comfy.server.log_tail()}"
    for name in expected:
        assert info[name]["python_module"].startswith("custom_nodes."), name
        assert info[name]["category"].startswith("OmniHuman/"), (name, info[name]["category"])


def test_no_import_failure_in_the_log(comfy):
    log = comfy.startup_log
    failures = [line for line in log.splitlines() if any(m in line for m in IMPORT_FAILURE_MARKERS)]
    assert not failures, "\n".join(failures) + "\n" + log[-4000:]
    # ComfyUI lists each custom node folder with its import time; a failed one is tagged IMPORT FAILED.
    listed = [line for line in log.splitlines() if line.strip().endswith(f"custom_nodes/{PACK_NAME}")]
    assert listed, f"the pack is not in ComfyUI's custom node list:\n{log[-4000:]}"
    print(f"\nComfyUI started in {comfy.startup_s:.1f} s; {listed[0].strip()}")


def test_workflows_are_served_as_templates(comfy):
    """ComfyUI lists a pack's workflows as templates and serves them under /api/workflow_templates/<pack>/.

    ComfyUI 0.8 maps every existing folder among example_workflows, example, examples, workflow and
    workflows to that same URL prefix, in that order, and the first one answers every request: a
    pack folder named examples/ (without the workflows) hides workflows/ (listed, but 404 to open).
    """
    listed = comfy.server.get_json("/api/workflow_templates")
    names = sorted(p.stem for p in WORKFLOWS)
    assert sorted(listed.get(PACK_NAME, [])) == names
    shadowing = [d for d in ("example_workflows", "example", "examples", "workflow")
                 if (ROOT / d).is_dir() and not list((ROOT / d).glob("*.json"))]
    for path in WORKFLOWS:
        try:
            with urllib.request.urlopen(f"{comfy.server.url}/api/workflow_templates/{PACK_NAME}/{path.name}") as r:
                served = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{path.name}: {e.code} from ComfyUI's template route; the pack's folder(s) "
                                 f"{shadowing} take the route before workflows/") from None
        assert served == json.loads(path.read_text()), path.name


def test_widget_script_is_served(comfy):
    with urllib.request.urlopen(f"{comfy.server.url}/extensions") as r:
        scripts = json.loads(r.read())
    ours = [s for s in scripts if s.startswith(f"/extensions/{PACK_NAME}/")]
    assert any(s.endswith("/schedule_editor.js") for s in ours), ours
    for s in ours:
        with urllib.request.urlopen(comfy.server.url + s) as r:
            assert r.status == 200 and r.read(), s
