"""`python -m omnihuman_core train ...`: the stage chain end to end with tiny presets, resume checks, errors."""

import json
import math

import pytest
import torch

from omnihuman_core.cli import build_parser, main
from omnihuman_core.pipeline.settings import RenderSettings
from omnihuman_core.synth import write_dataset
from omnihuman_core.weights import load_safetensors, read_metadata


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, 3, seed=7, size=64, frames=29, test_fraction=0.0, speech="babble")
    return root


@pytest.fixture(scope="module")
def vae_file(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("vae")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(["train", "vae", "--data", str(dataset), "--out", str(out / "vae.safetensors"), "--work",
                     str(out / "work"), "--preset", "tiny", "--steps", "2", "--batch-size", "1", "--frames", "5",
                     "--crop", "32", "--export-dtype", "float32"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return out / "vae.safetensors"


def mmdit(args, dataset, vae_file, tmp_path, stage, steps="2"):
    return main(["train", "mmdit", "--stage", stage, "--data", str(dataset), "--vae", str(vae_file), "--preset", "tiny",
                 "--frames", "9", "--steps", steps, "--batch-size", "2", "--cache", str(tmp_path / "cache"),
                 "--work", str(tmp_path / f"work_{stage}"), "--export-dtype", "float32", *args])


def test_train_help_lists_every_command():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["train"]
    names = next(a for a in sub._actions if a.dest == "train_command").choices
    assert set(names) == {"vae", "text", "mmdit", "upscaler", "demo"}


def test_vae_command_resume_with_other_settings_names_both(dataset, vae_file, capsys):
    assert read_metadata(vae_file)["omnihuman.kind"] == "vae"
    assert "train vae" in read_metadata(vae_file)["training_command"]
    work = vae_file.parent / "work"
    code = main(["train", "vae", "--data", str(dataset), "--out", str(vae_file.parent / "other.safetensors"),
                 "--work", str(work), "--preset", "tiny", "--steps", "3", "--batch-size", "1", "--frames", "5",
                 "--crop", "16"])
    err = capsys.readouterr().err
    assert code == 2
    assert "checkpoint config" in err and "this run's config" in err and "settings.crop: checkpoint 32, now 16" in err


def test_stage_chain_base_stage1_stage2(dataset, vae_file, tmp_path):
    base, stage1, stage2 = (tmp_path / f"{s}.safetensors" for s in ("base", "stage1", "stage2"))
    assert mmdit(["--out", str(base)], dataset, vae_file, tmp_path, "base") == 0
    text = tmp_path / "text_encoder.safetensors"
    text_state, text_cfg = load_safetensors(text, "text_encoder")  # trained jointly, exported next to the base
    assert text_cfg["dim"] == 32
    assert mmdit(["--out", str(stage1), "--init", str(base)], dataset, vae_file, tmp_path, "stage1") == 0
    assert mmdit(["--out", str(stage2), "--base", str(base), "--stage1", str(stage1)], dataset, vae_file, tmp_path,
                 "stage2") == 0
    b, _ = load_safetensors(base, "mmdit")
    s1, _ = load_safetensors(stage1, "mmdit")
    s2, cfg = load_safetensors(stage2, "mmdit")
    assert cfg["latent_channels"] == 4 and cfg["audio_dim"] == 400
    # Base: the audio branch never trained (still its init); stage 1 trained it.
    assert any(not torch.equal(b[k], s1[k]) for k in b if k.startswith("audio_embed"))
    meta = read_metadata(stage2)
    defaults = json.loads(meta["render_defaults"])
    assert defaults["segment_frames"] == 9 and defaults["short_side"] == 64 and defaults["fps"] == 24.0
    settings = RenderSettings.for_model(stage2)
    assert settings.segment_frames == 9 and settings.reference_mode == "pseudo_last_frame"
    assert json.loads(meta["training"])["steps"] == 2 and "--stage stage2" in meta["training_command"]
    # The file says what it was made from, back to the scratch base (which records no start of its own).
    lineage = json.loads(meta["started_from"])
    assert set(lineage) == {"base", "stage1"}
    assert "--stage base" in lineage["base"]["training_command"] and "started_from" not in lineage["base"]
    assert lineage["stage1"]["file"] == "stage1.safetensors" and lineage["stage1"]["training"]["steps"] == 2
    assert "--stage base" in lineage["stage1"]["started_from"]["init"]["training_command"]
    assert "started_from" not in read_metadata(base)
    # Stage 1 and 2 froze the text encoder: no new text encoder file was written over the base's.
    assert torch.equal(load_safetensors(text, "text_encoder")[0]["token_embedding.weight"],
                       text_state["token_embedding.weight"])
    # Rerunning a finished stage (as a script that chains the stages does) exports its files again, byte for byte,
    # so the next stage, whose checkpoint recorded their fingerprints, still resumes instead of refusing.
    before = {p: p.read_bytes() for p in (base, text, stage1)}
    assert mmdit(["--out", str(base)], dataset, vae_file, tmp_path, "base") == 0
    assert mmdit(["--out", str(stage1), "--init", str(base)], dataset, vae_file, tmp_path, "stage1") == 0
    assert mmdit(["--out", str(stage2), "--base", str(base), "--stage1", str(stage1)], dataset, vae_file, tmp_path,
                 "stage2") == 0
    assert all(p.read_bytes() == b for p, b in before.items())


def test_text_command_and_a_base_that_keeps_it_frozen(dataset, vae_file, tmp_path, capsys):
    text = tmp_path / "text" / "text_encoder.safetensors"
    assert main(["train", "text", "--data", str(dataset), "--out", str(text), "--work", str(tmp_path / "text_work"),
                 "--preset", "tiny", "--steps", "3", "--batch-size", "4", "--export-dtype", "float32"]) == 0
    meta = read_metadata(text)
    assert meta["omnihuman.kind"] == "text_encoder" and "train text" in meta["training_command"]
    record = json.loads(meta["pretraining"])
    assert record["captions"] >= 3 and {"accuracy", "chance", "spread", "spread_random_init"} <= set(record)
    before = text.read_bytes()

    base = tmp_path / "base" / "base.safetensors"
    assert mmdit(["--out", str(base), "--text-encoder", str(text)], dataset, vae_file, tmp_path, "base") == 0
    # Frozen: the run trained the MMDiT alone, wrote no copy, and names the encoder it needs.
    ckpt = torch.load(tmp_path / "work_base" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert set(ckpt["modules"]) == {"mmdit"}
    assert not (base.parent / "text_encoder.safetensors").exists() and text.read_bytes() == before
    named = json.loads(read_metadata(base)["text_encoder"])
    assert named["file"] == str(text.resolve()) and named["frozen"]
    # Stage 1 without --text-encoder finds it through that record.
    assert mmdit(["--out", str(tmp_path / "s1.safetensors"), "--init", str(base)], dataset, vae_file, tmp_path,
                 "stage1") == 0
    assert json.loads(read_metadata(tmp_path / "s1.safetensors")["text_encoder"])["file"] == str(text.resolve())
    # Nothing to write a trained copy of.
    assert mmdit(["--out", str(tmp_path / "x.safetensors"), "--text-encoder", str(text), "--text-out",
                  str(tmp_path / "t2.safetensors")], dataset, vae_file, tmp_path / "x", "joint") == 2
    assert "--text-out" in capsys.readouterr().err


def test_mmdit_stage_inputs_are_checked_first(dataset, vae_file, tmp_path, capsys):
    assert mmdit(["--out", str(tmp_path / "x.safetensors")], dataset, vae_file, tmp_path, "stage1") == 2
    assert "--init is required" in capsys.readouterr().err
    assert mmdit(["--out", str(tmp_path / "x.safetensors"), "--base", str(vae_file)], dataset, vae_file, tmp_path,
                 "stage2") == 2
    assert "--stage1 is required" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()  # nothing was encoded


def test_mmdit_resume_against_another_config_names_both(dataset, vae_file, tmp_path, capsys):
    out = str(tmp_path / "b.safetensors")
    assert mmdit(["--out", out, "--max-minutes", "0"], dataset, vae_file, tmp_path, "base") == 0
    assert (tmp_path / "work_base" / "checkpoint.pt").exists() and not (tmp_path / "b.safetensors").exists()
    assert mmdit(["--out", out, "--audio-mode", "cross_attention"], dataset, vae_file, tmp_path, "base") == 2
    err = capsys.readouterr().err
    assert "mmdit_config.audio_mode: checkpoint 'branch', now 'cross_attention'" in err
    assert "checkpoint config" in err and "this run's config" in err


def test_mmdit_checkpoint_without_the_mouth_weight_resumes(dataset, vae_file, tmp_path, capsys):
    """A checkpoint written before Recipe.mouth_weight existed trained at its old value (1): it resumes at 1 and
    is refused, with the reason, at another mouth weight."""
    out = str(tmp_path / "b.safetensors")
    assert mmdit(["--out", out, "--max-minutes", "0"], dataset, vae_file, tmp_path, "base") == 0
    ckpt = tmp_path / "work_base" / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    run = json.loads(state["run_info"])
    assert run["recipe"]["mouth_weight"] == 1.0
    for part in ("recipe", "settings"):
        del run[part]["mouth_weight"]
    state["run_info"] = json.dumps(run, sort_keys=True)
    torch.save(state, ckpt)
    capsys.readouterr()
    assert mmdit(["--out", out, "--max-minutes", "0", "--mouth-weight", "30"], dataset, vae_file, tmp_path,
                 "base") == 2
    assert "recipe.mouth_weight: checkpoint 1.0, now 30.0" in capsys.readouterr().err
    assert mmdit(["--out", out, "--max-minutes", "0"], dataset, vae_file, tmp_path, "base") == 0
    assert "resumed" in capsys.readouterr().err


def test_pooled_text_is_built_fresh_or_gained_from_an_init_file(dataset, vae_file, tmp_path, capsys):
    from omnihuman_core.weights import load_safetensors

    plain = tmp_path / "plain.safetensors"
    assert mmdit(["--out", str(plain)], dataset, vae_file, tmp_path, "base") == 0
    state, config = load_safetensors(plain, "mmdit")
    assert not config.get("pooled_text") and not any(k.startswith("text_pool.") for k in state)
    # Gained from a file without it: the run starts from that file's weights, the path at zero output.
    gained = tmp_path / "gained.safetensors"
    assert mmdit(["--out", str(gained), "--init", str(plain), "--pooled-text", "--steps", "1"], dataset, vae_file,
                 tmp_path / "g", "base") == 0
    state, config = load_safetensors(gained, "mmdit")
    assert config["pooled_text"] and {"text_pool.fc1.weight", "text_pool.fc2.weight"} <= set(state)
    # Stage 2 takes the text branch from the base, so it cannot gain the path itself.
    s1 = tmp_path / "s1.safetensors"
    assert mmdit(["--out", str(s1), "--init", str(plain)], dataset, vae_file, tmp_path, "stage1") == 0
    capsys.readouterr()
    assert mmdit(["--out", str(tmp_path / "s2.safetensors"), "--base", str(plain), "--stage1", str(s1),
                  "--pooled-text"], dataset, vae_file, tmp_path, "stage2") == 2
    assert "train the base" in capsys.readouterr().err
    # A fresh model is built with it.
    fresh = tmp_path / "fresh.safetensors"
    assert mmdit(["--out", str(fresh), "--pooled-text"], dataset, vae_file, tmp_path / "f", "joint") == 0
    assert load_safetensors(fresh, "mmdit")[1]["pooled_text"]


def test_upscaler_command(dataset, vae_file, tmp_path):
    out = tmp_path / "up.safetensors"
    code = main(["train", "upscaler", "--data", str(dataset), "--vae", str(vae_file), "--out", str(out), "--work",
                 str(tmp_path / "w"), "--preset", "sr-tiny", "--samples", "4", "--crop", "32", "--frames", "5",
                 "--batch-size", "2", "--steps", "2"])
    assert code == 0
    from omnihuman_core.upscale import load_upscaler

    up = load_upscaler(out)
    assert up.config.mmdit.latent_channels == 4
    assert "validation" in read_metadata(out)


def test_upscaler_deadline_takes_the_cache_time_out_of_the_training_minutes(dataset, vae_file, tmp_path):
    """`train demo` gives the upscaler a wall-clock deadline: its crop cache's time comes out of the training
    minutes instead of running past the step's budget."""
    import time
    from omnihuman_core.train.loop import TrainConfig
    from omnihuman_core.train.upscaler import train_upscaler

    out = tmp_path / "up.safetensors"
    config = TrainConfig(lr=3e-4, batch_size=2, steps=2, minutes=10.0)
    result, path = train_upscaler(dataset, vae_file, out, tmp_path / "w", config, preset="sr-tiny", samples=4,
                                  crop=32, frames=5, deadline=time.time() + 30)
    assert result.done and path == out
    minutes = json.loads(read_metadata(out)["train_config"])["minutes"]
    assert 0.05 <= minutes <= 0.5  # at most the 30 s to the deadline, not the 10 minutes asked


def test_core_demo_pipeline_with_tiny_presets(dataset, tmp_path, monkeypatch):
    """Every step of `train demo` within a tiny budget; a rerun skips the finished steps."""
    args = ["train", "demo", "--data", str(dataset), "--out", str(tmp_path / "out"), "--work",
            str(tmp_path / "work"), "--minutes-total", "0.25", "--preset", "tiny", "--sr-data", str(dataset)]
    assert main(args) == 0
    plan = json.loads((tmp_path / "work" / "plan.json").read_text())
    assert plan["status"] == "done"
    assert all(plan["stages"][s]["done"] for s in ("vae", "cache", "text", "base", "stage1", "stage2", "upscaler"))
    kinds = {}
    for name in ("vae", "text_encoder", "mmdit", "upscaler"):
        meta = read_metadata(tmp_path / "out" / f"{name}.safetensors")
        kinds[name] = meta["omnihuman.kind"]
        state, _ = load_safetensors(tmp_path / "out" / f"{name}.safetensors")
        assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
        demo = json.loads(meta["demo"])
        assert demo["steps"] >= 1 and "train demo" in demo["command"]
        if name == "text_encoder":  # pretrained in its own step, then frozen in every MMDiT stage
            assert demo["step"] == "text" and "pretraining" in meta
    assert not (tmp_path / "work" / "base" / "text_encoder.safetensors").exists()
    assert kinds == {"vae": "vae", "text_encoder": "text_encoder", "mmdit": "mmdit", "upscaler": "upscaler"}
    # The mouth weight only where audio can explain the mouth: the audio stages, not the text+video base.
    from omnihuman_core.train.demo import FACE_WEIGHT, MOUTH_WEIGHT
    for stage, mouth in (("base", 1.0), ("stage1", MOUTH_WEIGHT), ("stage2", MOUTH_WEIGHT)):
        recipe = json.loads(read_metadata(tmp_path / "work" / stage / "mmdit.safetensors")["recipe"])
        assert (recipe["face_weight"], recipe["mouth_weight"]) == (FACE_WEIGHT, mouth), stage
    defaults = json.loads(read_metadata(tmp_path / "out" / "mmdit.safetensors")["render_defaults"])
    assert defaults["segment_frames"] == 9 and defaults["motion_frames"] == 5 and defaults["steps"] == 20
    stamp = (tmp_path / "work" / "stage2" / "mmdit.safetensors").stat().st_mtime_ns
    from omnihuman_core.train.cli import DEMO_RENDER_DEFAULTS
    assert (defaults["text_scale"], defaults["audio_scale"]) == (DEMO_RENDER_DEFAULTS["text_scale"],
                                                                 DEMO_RENDER_DEFAULTS["audio_scale"])
    assert defaults["first_frame_from_reference"] is True
    # Guidance chosen after training reaches the shipped file by re-exporting, not by retraining.
    monkeypatch.setitem(DEMO_RENDER_DEFAULTS, "audio_scale", 7.5)
    monkeypatch.setitem(DEMO_RENDER_DEFAULTS, "first_frame_from_reference", False)
    assert main(args) == 0  # everything done: only the export runs again
    assert (tmp_path / "work" / "stage2" / "mmdit.safetensors").stat().st_mtime_ns == stamp
    defaults = json.loads(read_metadata(tmp_path / "out" / "mmdit.safetensors")["render_defaults"])
    assert defaults["audio_scale"] == 7.5 and defaults["segment_frames"] == 9
    assert defaults["first_frame_from_reference"] is False


def test_demo_budget_shares_are_stored_by_the_first_run_and_kept(dataset, tmp_path, capsys):
    from omnihuman_core.train.demo import SPLIT, _DemoRun, budget_split

    work = tmp_path / "work"
    args = ["train", "demo", "--data", str(dataset), "--out", str(tmp_path / "out"), "--work", str(work),
            "--minutes-total", "100", "--preset", "tiny", "--only", "data"]
    assert main(args + ["--share", "base=0.5", "--share", "stage2=0.05"]) == 0  # the dataset exists: nothing runs
    plan = json.loads((work / "plan.json").read_text())
    assert plan["split"] == {**SPLIT, "base": 0.5, "stage2": 0.05}
    run = _DemoRun(plan, work / "plan.json", dataset, tmp_path / "out", work, print, None, "tiny", 0, None)
    assert run.budget("base") == round(100 * 0.5 / sum(plan["split"].values()), 3)
    assert "--share base=0.5 --share stage2=0.05" in run.command  # the exported files' command reproduces it
    # A rerun keeps the split it started with; another split is refused, naming the stored one.
    assert main(args + ["--share", "base=0.4"]) == 2
    assert "was started with the split" in capsys.readouterr().err
    assert main(args) == 0 and json.loads((work / "plan.json").read_text())["split"]["base"] == 0.5
    assert budget_split() == SPLIT and budget_split({"stage1": 0.2})["stage1"] == 0.2
    for bad, message in ((["--share", "base"], "expected STEP=FRACTION"), (["--share", "sampler=0.2"], "unknown step"),
                         (["--share", "base=0"], "must be a number > 0"), (["--share", "base=nan"], "must be a number > 0")):
        assert main(args[:7] + [str(tmp_path / "new")] + args[8:] + bad) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "new").exists()  # refused before the work folder is made


def test_demo_fixed_step_counts_train_exactly_whatever_the_minutes_and_are_kept(dataset, tmp_path, capsys):
    """`--steps` trains a step to a count, not to minutes; `--steps-from` takes every count of a finished plan, the
    way to rebuild a shipped model on a machine of another speed."""
    from omnihuman_core.train.demo import TRAINED

    counts = {"vae": 3, "text": 2, "base": 2, "stage1": 3, "stage2": 2, "upscaler": 2}
    work = tmp_path / "work"
    args = ["train", "demo", "--data", str(dataset), "--out", str(tmp_path / "out"), "--work", str(work),
            "--minutes-total", "0.01", "--preset", "tiny", "--sr-data", str(dataset)]
    assert main(args + [f"--steps={k}={v}" for k, v in counts.items()]) == 0
    plan = json.loads((work / "plan.json").read_text())
    assert plan["status"] == "done" and plan["fixed_steps"] == counts
    assert {s: plan["stages"][s]["steps"] for s in TRAINED} == counts  # 0.01 minutes would have allowed ~1 each
    # No step got minutes: the fixed ones train to their counts, and the cache of fixed MMDiT stages is built
    # whole rather than cut at a budget.
    assert not any("budget" in plan["stages"][s] for s in (*TRAINED, "cache"))
    assert all(plan["stages"][s]["fixed_steps"] == counts[s] for s in TRAINED)
    assert "time budget" not in capsys.readouterr().out
    demo = json.loads(read_metadata(tmp_path / "out" / "mmdit.safetensors")["demo"])
    assert demo["steps"] == 2 and "--steps vae=3" in demo["command"] and "--steps upscaler=2" in demo["command"]
    # A rerun keeps its counts; other counts are refused, naming the stored ones.
    assert main(args + ["--steps", "vae=4"]) == 2
    assert "was started with the step counts" in capsys.readouterr().err
    # --steps-from: a new work folder takes the finished plan's counts; --steps overrides one of them.
    new = ["train", "demo", "--data", str(dataset), "--out", str(tmp_path / "o2"), "--work", str(tmp_path / "w2"),
           "--preset", "tiny", "--only", "data", "--steps-from", str(work / "plan.json"), "--steps", "stage2=5"]
    assert main(new) == 0
    assert json.loads((tmp_path / "w2" / "plan.json").read_text())["fixed_steps"] == {**counts, "stage2": 5}
    for bad, message in ((["--steps", "vae=0"], "whole number >= 1"), (["--steps", "vae=x"], "expected STEP=COUNT"),
                         (["--steps", "cache=3"], "unknown step 'cache'"),
                         (["--steps-from", str(tmp_path / "nowhere.json")], "not a readable `train demo` plan"),
                         (["--steps-from", str(tmp_path / "w2" / "plan.json")], "no finished step")):
        assert main(new[:7] + [str(tmp_path / "w3")] + new[8:12] + bad) == 2, bad
        assert message in capsys.readouterr().err
        assert not (tmp_path / "w3").exists()  # refused before the work folder is made
    # The steps with a budget share the minutes among themselves: a fixed step takes no share.
    from omnihuman_core.train.demo import SPLIT, _DemoRun
    plan = {"minutes_total": 100.0, "stages": {}, "split": dict(SPLIT), "fixed_steps": {"stage2": 10},
            "precision": "float32", "timestep_shift": 1.0}
    run = _DemoRun(plan, tmp_path / "p.json", dataset, tmp_path / "o", tmp_path, print, None, "tiny", 0, None)
    assert run.budget("base") == round(100 * SPLIT["base"] / (sum(SPLIT.values()) - SPLIT["stage2"]), 3)
    assert run.limits("stage2") == {"minutes": 0.0, "steps": 10} and run.limits("text", 20)["steps"] == 20


def test_demo_timestep_shift_is_stored_by_the_first_run_and_kept(dataset, tmp_path, capsys):
    from omnihuman_core.train.demo import _DemoRun

    work = tmp_path / "work"
    args = ["train", "demo", "--data", str(dataset), "--out", str(tmp_path / "out"), "--work", str(work),
            "--minutes-total", "100", "--preset", "tiny", "--only", "data"]
    assert main(args + ["--timestep-shift", "3"]) == 0
    plan = json.loads((work / "plan.json").read_text())
    assert plan["timestep_shift"] == 3.0
    run = _DemoRun(plan, work / "plan.json", dataset, tmp_path / "out", work, print, None, "tiny", 0, None)
    assert run.command.endswith("--timestep-shift 3")
    assert main(args + ["--timestep-shift", "2"]) == 2
    assert "was started with timestep shift 3" in capsys.readouterr().err
    assert main(args) == 0 and json.loads((work / "plan.json").read_text())["timestep_shift"] == 3.0
    for bad in ("0", "-2", "nan"):
        assert main(args[:7] + [str(tmp_path / "new")] + args[8:] + ["--timestep-shift", bad]) == 2
        assert "--timestep-shift must be a number > 0" in capsys.readouterr().err
        assert not (tmp_path / "new").exists()


def test_mmdit_conditioning_probabilities_reach_the_recipe_and_the_checkpoint_identity(dataset, vae_file, tmp_path,
                                                                                        capsys):
    out = tmp_path / "p.safetensors"
    assert mmdit(["--out", str(out), "--p-drop-last", "0.5", "--p-first-frames", "0.25", "--mouth-weight", "3"], dataset,
                 vae_file, tmp_path, "base") == 0
    recipe = json.loads(read_metadata(out)["recipe"])
    assert recipe["p_drop_last"] == 0.5 and recipe["p_first_frames"] == 0.25 and recipe["mouth_weight"] == 3
    # Resuming that run with the old default is refused, naming the setting.
    assert mmdit(["--out", str(out), "--steps", "3", "--mouth-weight", "3"], dataset, vae_file, tmp_path, "base") == 2
    assert "p_drop_last: checkpoint 0.5, now 0.1" in capsys.readouterr().err
    assert mmdit(["--out", str(out), "--p-drop-last", "1.5"], dataset, vae_file, tmp_path / "bad", "base") == 2
    assert "p_drop_last must be a probability" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "cache").exists()  # refused before encoding anything


def test_mmdit_timestep_shift_reaches_the_recipe_and_the_checkpoint_identity(dataset, vae_file, tmp_path, capsys):
    out = tmp_path / "s.safetensors"
    assert mmdit(["--out", str(out), "--timestep-shift", "3"], dataset, vae_file, tmp_path, "base") == 0
    assert json.loads(read_metadata(out)["recipe"])["logit_normal_mean"] == pytest.approx(math.log(3))
    assert "--timestep-shift 3.0" in read_metadata(out)["training_command"]
    assert mmdit(["--out", str(out), "--steps", "3"], dataset, vae_file, tmp_path, "base") == 2
    assert "timestep_shift: checkpoint 3.0, now 1.0" in capsys.readouterr().err
    assert mmdit(["--out", str(out), "--timestep-shift", "0"], dataset, vae_file, tmp_path / "bad", "base") == 2
    assert "timestep_shift must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "cache").exists()  # refused before encoding anything
