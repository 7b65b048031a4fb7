"""In Chromium, workflow 2 is loaded, a shot is edited in the schedule editor widget, the graph is
queued, and the backend receives the edit (without asking the LLM to plan again).

Runs browser_edit.mjs with Node and playwright-core (skipped when Chromium, Node or playwright-core
is missing). Screenshots go to the test's temp folder, or to docs/screenshots/ with
OMNIHUMAN_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fake_llm import MARKER, FakeLLM

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORKFLOW = ROOT / "workflows" / "02_system2_full.json"
EDIT = "The character throws both arms up and laughs (edited in the browser)."
EDIT_ACTION = "throws both arms up and laughs"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Screenshots committed under docs/ stay small: PNGs over this are re-encoded with a palette.
MAX_SCREENSHOT_BYTES = 300_000


def playwright_available() -> bool:
    node = shutil.which("node")
    if node is None:
        return False
    probe = ("import('./scripts/comfy_page.mjs').then(m => { m.loadPlaywright(); m.chromiumPath(); })"
             ".catch(e => { console.error(e.message); process.exit(1); })")
    return subprocess.run([node, "--input-type=module", "-e", probe], cwd=ROOT, capture_output=True).returncode == 0


# (The conftest skips everything here without COMFYUI_PATH; no need to probe Node then.)
pytestmark = pytest.mark.skipif(bool(os.environ.get("COMFYUI_PATH")) and not (Path(CHROMIUM).exists()
                                                                            and playwright_available()),
                                reason="needs Node, Chromium and playwright-core (npm install --no-save --prefix "
                                       "tests/integration playwright-core)")


def shrink_png(path: Path, limit: int = MAX_SCREENSHOT_BYTES) -> None:
    """Keep committed screenshots small: palette PNG (UI screenshots survive 256 colours well)."""
    from PIL import Image

    if path.stat().st_size <= limit:
        return
    with Image.open(path) as im:
        im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def test_edit_in_the_widget_reaches_the_backend(comfy, tmp_path):
    shots = ROOT / "docs" / "screenshots" if os.environ.get("OMNIHUMAN_UPDATE_SCREENSHOTS") else tmp_path / "shots"
    result_path = tmp_path / "browser_result.json"
    with FakeLLM() as llm:
        env = dict(os.environ, COMFY_URL=comfy.server.url, WORKFLOW=str(WORKFLOW), LLM_URL=llm.base_url,
                   RESULT=str(result_path), SHOTS_DIR=str(shots), EDIT_TEXT=EDIT, EDIT_ACTION=EDIT_ACTION,
                   CHEAP=json.dumps({"steps": 2}), CHROMIUM=CHROMIUM)
        proc = subprocess.run(["node", str(HERE / "browser_edit.mjs")], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=1500)
        calls = list(llm.calls)
    report = json.loads(result_path.read_text()) if result_path.exists() else {}
    assert proc.returncode == 0 and "error" not in report, (
        f"{report.get('error')}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{comfy.server.log_tail()}")
    print("\n" + "\n".join(report["steps"]) + f"\nLLM requests: {calls}")

    # Before any run the widget has nothing to show; after it, the planner's (the fake LLM's) schedule.
    assert report["before_run"]["badge"] == "no schedule"
    assert report["after_run"]["badge"] == "planner's schedule" and report["after_run"]["value"] == ""
    assert report["after_run"]["rows"] >= 1
    # The edit is the widget's value, as JSON text.
    edited = json.loads(report["after_edit"]["value"])
    assert edited["shots"][0]["prompt"] == EDIT and edited["shots"][0]["action"] == EDIT_ACTION
    assert report["after_edit"]["badge"] == "edited" and not report["after_edit"]["issues"]

    # The backend received it: the queued prompt carries the edited text, and the node put it out.
    history = comfy.server.get_json(f"/history/{report['second_prompt_id']}")[report["second_prompt_id"]]
    editor_id = str(report["loaded"]["editorId"])
    sent = history["prompt"][2][editor_id]["inputs"]["schedule_json"]
    assert json.loads(sent)["shots"][0]["prompt"] == EDIT
    ui = history["outputs"][editor_id]
    out_schedule = ui["schedule"][0]
    out_schedule = json.loads(out_schedule) if isinstance(out_schedule, str) else out_schedule
    assert out_schedule["shots"][0]["prompt"] == EDIT
    planner = ui["planner_schedule"][0]
    planner = json.loads(planner) if isinstance(planner, str) else planner
    assert planner["planner"]["kind"] == "llm" and planner["planner"]["model"] == "fake", planner["planner"]
    assert MARKER in planner["shots"][0]["rationale"], "the planner's schedule did not come from the LLM"
    # The edit re-ran only what follows the editor: the Planner's result was reused, no new plan request.
    assert calls.count("plan") == 1 and calls.count("analysis") == 1, calls
    videos = [o for o in history["outputs"].values() for k, v in o.items() if k in ("images", "videos")
              for item in v if str(item.get("filename", "")).endswith(".mp4")]
    assert videos, history["outputs"]
    # The edit survives the run (edits are never overwritten by the node's output).
    assert json.loads(report["after_second_run"]["value"])["shots"][0]["prompt"] == EDIT

    for name in ("schedule_editor_widget.png", "workflow_system2_graph.png"):
        shrink_png(shots / name)
        assert (shots / name).stat().st_size <= MAX_SCREENSHOT_BYTES
