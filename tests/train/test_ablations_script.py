"""scripts/ablations.sh: which runs it asks for, with a stand-in Python that records `-m omnihuman_core` calls.

The stand-in runs every other call (`-c` snippets that read the recipe and the run's plan) with this Python, and
answers `train mmdit` / `evaluate run` / `evaluate table` by writing the file named after --out (--out-md), so the script's bookkeeping
(budgets, linking the full row, rows per sitting, skipping finished work) is tested without training anything.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "ablations.sh"

_FAKE = """#!/usr/bin/env bash
if [ "$1" = -m ] && [ "$2" = omnihuman_core ]; then
  printf '%s\\n' "$*" >> "$CALLS"
  out=""; prev=""
  for a in "$@"; do case $prev in --out|--out-md) out=$a;; esac; prev=$a; done
  mkdir -p "$(dirname "$out")" && echo made > "$out"; exit 0
fi
exec {python} "$@"
"""


@pytest.fixture
def env(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(_FAKE.format(python=shlex.quote(sys.executable)))
    fake.chmod(0o755)
    calls = tmp_path / "calls.txt"
    calls.touch()
    return {**os.environ, "PYTHON": str(fake), "CALLS": str(calls), "WORK": str(tmp_path / "work"),
            "RESULTS": str(tmp_path / "results"), "DATA": str(tmp_path / "data"), "CLIPS": "3"}


def _full_run(root: Path, done=("base", "stage1", "stage2"), **plan_extra) -> Path:
    steps = {"base": 11, "stage1": 5, "stage2": 7}
    plan = {"stages": {s: {"steps": n, "done": s in done} for s, n in steps.items()}, **plan_extra}
    root.mkdir(parents=True)
    (root / "plan.json").write_text(json.dumps(plan))
    for sub in ("base", "stage1", "stage2"):
        (root / sub).mkdir()
        (root / sub / "mmdit.safetensors").write_text(sub)
    for sub, name in (("text", "text_encoder"), ("vae", "vae")):
        (root / sub).mkdir()
        (root / sub / f"{name}.safetensors").write_text(sub)
    (root / "latent_cache").mkdir()
    return root


def _run(env, **extra):
    r = subprocess.run(["bash", str(SCRIPT)], env={**env, **extra}, capture_output=True, text=True, timeout=120)
    calls = [line.split() for line in Path(env["CALLS"]).read_text().splitlines()]
    return r, calls


def _flag(call, name):
    return call[call.index(name) + 1]


def test_a_finished_demo_run_is_the_full_row_and_sets_every_rows_steps(env, tmp_path):
    run = _full_run(tmp_path / "demo_work")
    r, calls = _run(env, FULL_RUN=str(run), ROWS="full no_reasoning no_mm_warmup cross_attention_audio")
    assert r.returncode == 0, r.stderr
    assert "steps base 11 / stage 1 5 / stage 2 7" in r.stdout
    work = Path(env["WORK"])
    # The full row is the run's files, not a retrained model.
    assert (work / "full" / "mmdit.safetensors").read_text() == "stage2"
    assert (work / "full" / "base.safetensors").read_text() == "base"
    trains = [c for c in calls if c[2] == "train"]
    assert not any("/full/" in _flag(c, "--out") for c in trains)
    joint = [c for c in trains if _flag(c, "--stage") == "joint"]
    assert len(joint) == 1 and _flag(joint[0], "--steps") == "12"  # stage 1 + stage 2 of the run
    assert _flag(joint[0], "--init") == str(work / "full" / "base.safetensors")
    xattn = {_flag(c, "--stage"): c for c in trains if "--audio-mode" in c}
    assert {s: _flag(c, "--steps") for s, c in xattn.items()} == {"base": "11", "stage1": "5", "stage2": "7"}
    assert all(_flag(c, "--cache") == str(run / "latent_cache") for c in trains)
    assert all(_flag(c, "--text-encoder") == str(run / "text" / "text_encoder.safetensors") for c in trains)
    evals = {_flag(c, "--label"): c for c in calls if c[2:4] == ["evaluate", "run"]}
    assert set(evals) == {"full", "no_reasoning", "no_mm_warmup", "cross_attention_audio"}
    assert _flag(evals["no_reasoning"], "--prompts") == "generic"
    # The pseudo-last-frame rows start on the reference, as the shipped demo renders (a stage file does not say so).
    assert all("--first-frame-from-reference" in c for c in evals.values())
    assert all(_flag(c, "--vae") == str(run / "vae" / "vae.safetensors") for c in evals.values())
    # Rows not asked for are neither trained nor rendered.
    assert not any("--recipe-reference-mode" in c or "--reference-mode" in c for c in calls)

    # A second sitting renders only what is missing and trains nothing already trained.
    Path(env["CALLS"]).write_text("")
    r, calls = _run(env, FULL_RUN=str(run), ROWS="full no_mm_warmup reference_image")
    assert r.returncode == 0, r.stderr
    evals = [c for c in calls if c[2:4] == ["evaluate", "run"]]
    assert [_flag(c, "--label") for c in evals] == ["reference_image"]
    assert "--no-first-frame-from-reference" in evals[0] and _flag(evals[0], "--reference-mode") == "reference"
    assert {_flag(c, "--out").split("/")[-2] for c in calls if c[2] == "train"} == {"reference_image"}


@pytest.mark.parametrize("case, message", [
    ("unknown_row", "unknown row 'fullish' in ROWS"),
    ("no_plan", "has no plan.json"),
    ("unfinished", "has not finished stage2"),
    ("shifted", "timestep shift 3"),
    ("first_frame", "FIRST_FRAME must be reference or generated"),
])
def test_bad_settings_are_refused_before_anything_runs(env, tmp_path, case, message):
    extra = {"ROWS": "fullish"} if case == "unknown_row" else {"FIRST_FRAME": "first"} if case == "first_frame" else {}
    if case == "no_plan":
        extra["FULL_RUN"] = str(tmp_path / "not_a_run")
    elif case == "unfinished":
        extra["FULL_RUN"] = str(_full_run(tmp_path / "run", done=("base", "stage1")))
    elif case == "shifted":
        extra["FULL_RUN"] = str(_full_run(tmp_path / "run", timestep_shift=3.0))
    r, calls = _run(env, **extra)
    assert r.returncode != 0 and message in r.stderr
    assert calls == []


def test_the_no_reference_row_generates_its_first_frame_and_generated_applies_to_the_pinned_rows(env, tmp_path):
    run = _full_run(tmp_path / "demo_work")
    r, calls = _run(env, FULL_RUN=str(run), ROWS="full no_reference")
    assert r.returncode == 0, r.stderr
    evals = {_flag(c, "--label"): c for c in calls if c[2:4] == ["evaluate", "run"]}
    assert "--no-first-frame-from-reference" in evals["no_reference"]
    assert "--first-frame-from-reference" not in evals["no_reference"]
    assert "--first-frame-from-reference" in evals["full"]
    for label in evals:
        (Path(env["RESULTS"]) / f"{label}.json").unlink()
    Path(env["CALLS"]).write_text("")
    r, calls = _run(env, FULL_RUN=str(run), ROWS="full no_reference", FIRST_FRAME="generated")
    assert r.returncode == 0, r.stderr
    evals = [c for c in calls if c[2:4] == ["evaluate", "run"]]
    assert len(evals) == 2 and all("--no-first-frame-from-reference" in c for c in evals)


def test_a_work_folder_filled_from_one_run_refuses_another(env, tmp_path):
    first, second = _full_run(tmp_path / "run_a"), _full_run(tmp_path / "run_b")
    r, _ = _run(env, FULL_RUN=str(first), ROWS="full")
    assert r.returncode == 0, r.stderr
    Path(env["CALLS"]).write_text("")
    r, calls = _run(env, FULL_RUN=str(second), ROWS="full no_mm_warmup")
    assert r.returncode != 0 and "holds the rows of FULL_RUN" in r.stderr and "own WORK" in r.stderr
    assert calls == []
    assert (Path(env["WORK"]) / "full" / "mmdit.safetensors").samefile(first / "stage2" / "mmdit.safetensors")


def test_a_plan_file_alone_sets_the_steps_and_links_nothing(env, tmp_path):
    # On a machine without the shipped run's work folder: the shipped plan gives the budget, the files are passed.
    plan = _full_run(tmp_path / "demo_work") / "plan.json"
    files = {"VAE": str(tmp_path / "vae.safetensors"), "TEXT_ENCODER": str(tmp_path / "te.safetensors")}
    Path(files["TEXT_ENCODER"]).write_text("te")
    r, calls = _run(env, PLAN=str(plan), ROWS="no_reference", **files)
    assert r.returncode == 0, r.stderr
    assert "steps of" in r.stdout and "base 11 / stage 1 5 / stage 2 7" in r.stdout
    trains = [c for c in calls if c[2] == "train"]
    assert {_flag(c, "--stage"): _flag(c, "--steps") for c in trains} == {"base": "11", "stage1": "5", "stage2": "7"}
    assert all(_flag(c, "--recipe-reference-mode") == "none" for c in trains)
    assert all(_flag(c, "--text-encoder") == files["TEXT_ENCODER"] for c in trains)
    assert all(_flag(c, "--cache") == str(Path(env["WORK"]) / "latent_cache") for c in trains)
    assert not (Path(env["WORK"]) / "full").exists()
    (ev,) = [c for c in calls if c[2:4] == ["evaluate", "run"]]
    assert _flag(ev, "--vae") == files["VAE"] and _flag(ev, "--label") == "no_reference"

    # The same WORK with another budget is refused before anything runs; an unfinished plan too.
    other = _full_run(tmp_path / "other", done=("base", "stage1", "stage2"))
    (other / "plan.json").write_text(json.dumps({"stages": {s: {"steps": 3, "done": True}
                                                            for s in ("base", "stage1", "stage2")}}))
    Path(env["CALLS"]).write_text("")
    r, calls = _run(env, PLAN=str(other / "plan.json"), ROWS="reference_image", **files)
    assert r.returncode != 0 and "holds rows trained for steps 11 5 7" in r.stderr and calls == []
    unfinished = _full_run(tmp_path / "unfinished", done=("base",))
    r, calls = _run(env, PLAN=str(unfinished / "plan.json"), WORK=str(tmp_path / "w2"), **files)
    assert r.returncode != 0 and "has not finished stage1 stage2" in r.stderr and calls == []
    r, calls = _run(env, PLAN=str(tmp_path / "missing.json"), **files)
    assert r.returncode != 0 and "is not a file" in r.stderr and calls == []
    # With FULL_RUN the full row is that run: another run's plan would give the other rows other steps.
    r, calls = _run(env, PLAN=str(other / "plan.json"), FULL_RUN=str(tmp_path / "demo_work"), WORK=str(tmp_path / "w3"))
    assert r.returncode != 0 and "drop PLAN" in r.stderr and calls == []
