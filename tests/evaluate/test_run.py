"""`evaluate run / drift / table` end to end: a tiny synthetic dataset, tiny random System 1 models, the
shipped probes. Random models render noise, so only the plumbing and the ceiling's numbers are checked here."""

import json
import math
import shutil

import pytest

from omnihuman_core.cli import main
from omnihuman_core.errors import InputError
from omnihuman_core.evaluate.probes import probes_path_default
from omnihuman_core.evaluate.run import (GENERIC_PROMPT, ModelFiles, action_frame_index, clip_schedule,
                                         dataset_split, results_table, run_benchmark, run_drift)
from omnihuman_core.schedule import Schedule
from omnihuman_core.synth.dataset import write_dataset
from omnihuman_core.weights import load_safetensors, save_safetensors

PROBES = probes_path_default()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    # 3 identities x 2 clips: one identity (2 clips) is held out as the test split.
    write_dataset(d / "data", 6, seed=3, size=64, frames=41, clips_per_identity=2, test_fraction=0.3,
                  speech="babble")
    assert main(["init", "--kind", "mmdit", "--preset", "tiny", "--audio-dim", "400", "--out", str(d / "m0.safetensors")]) == 0
    assert main(["init", "--kind", "vae", "--preset", "tiny", "--out", str(d / "v.safetensors")]) == 0
    assert main(["init", "--kind", "text_encoder", "--preset", "tiny", "--out", str(d / "t.safetensors")]) == 0
    # The trainer's export records the model's render settings; a tiny one renders 32 px, 17-frame segments.
    state, config = load_safetensors(d / "m0.safetensors", "mmdit")
    save_safetensors(d / "m.safetensors", state, "mmdit", config,
                     {"render_defaults": {"short_side": 32, "segment_frames": 17, "steps": 1, "fps": 24.0}})
    return d


def _model(d):
    return ModelFiles(d / "m.safetensors", d / "v.safetensors", str(d / "t.safetensors"))


def _finite(x):
    return isinstance(x, float) and math.isfinite(x)


def test_run_renders_measures_and_writes_results(world):
    out = world / "full.json"
    r = run_benchmark(world / "data", clips=1, probes_path=PROBES, model=_model(world), out=out, label="full",
                      work_dir=world / "videos", progress=None)
    assert json.loads(out.read_text())["label"] == "full"
    assert (world / "videos" / f"{r['clips'][0]['id']}.mp4").exists()
    s = r["summary"]
    assert s["model"]["clips"] == s["gt"]["clips"] == 1
    for who in ("model", "gt"):
        m = r["clips"][0][who]
        assert m["frames"] == 41
        assert _finite(m["identity"]) and m["action_total"] >= 1
        assert m["hkv"] is None or _finite(m["hkv"])
    gt = r["clips"][0]["gt"]
    if gt["lip_sync"] is not None:  # babble speech (not a silent clip): the ground truth is in sync
        assert gt["lip_sync"] > 0.6 and abs(gt["lip_sync_offset"]) <= 1
    assert gt["identity"] > r["clips"][0]["model"]["identity"]  # random weights render noise, not the character
    assert r["settings"]["segment_frames"] == 17 and r["settings"]["prompts"] == "schedule"
    # One prompt per 17-frame segment, each a caption of the clip's own character.
    assert len(r["clips"][0]["prompts"]) == 3
    assert r["unavailable"] == {}


def test_generic_prompts_and_reference_mode(world):
    r = run_benchmark(world / "data", clips=1, probes_path=PROBES, model=_model(world), prompts="generic",
                      reference_mode="none", text_scale=7.5, audio_scale=0.0, progress=None)
    assert r["clips"][0]["prompts"] == [GENERIC_PROMPT]
    assert r["settings"]["text_scale"] == 7.5 and r["settings"]["audio_scale"] == 0.0  # overrides, recorded
    assert r["settings"]["reference_mode"] == "none" and r["settings"]["prompts"] == "generic"
    assert r["settings"]["first_frame_from_reference"] is False
    pinned = run_benchmark(world / "data", clips=1, probes_path=PROBES, model=_model(world),
                           first_frame_from_reference=True, shift=1.5, solver="heun", progress=None)
    assert pinned["settings"]["first_frame_from_reference"] is True
    assert pinned["settings"]["shift"] == 1.5 and pinned["settings"]["solver"] == "heun"  # sampler overrides, recorded
    # The targets of text adherence stay the schedule's actions, whatever the model was told.
    assert r["clips"][0]["model"]["action_total"] == r["clips"][0]["gt"]["action_total"]


def test_action_frame_index_is_the_middle_of_the_longest_non_idle_run(tmp_path):
    import types

    import numpy as np

    from omnihuman_core.synth.vocab import ACTIONS

    idle, wave, nod = ACTIONS.index("idle"), ACTIONS.index("wave_left"), ACTIONS.index("nod")
    clip = types.SimpleNamespace(dir=tmp_path)
    # idle 0-9, wave 10-13, idle 14-19 (a longer idle run must not win), nod 20-29
    np.savez(tmp_path / "labels.npz", action=np.array([idle] * 10 + [wave] * 4 + [idle] * 16 + [nod] * 10))
    assert action_frame_index(clip) == 34
    np.savez(tmp_path / "labels.npz", action=np.array([idle] * 10))
    assert action_frame_index(clip) is None  # idle throughout: the neutral reference stays
    (tmp_path / "labels.npz").unlink()
    with pytest.raises(InputError, match="--reference-source neutral"):
        action_frame_index(clip)


def test_reference_source_action_frame_renders_from_the_clip_frame(world):
    r = run_benchmark(world / "data", clips=2, probes_path=PROBES, model=_model(world),
                      reference_source="action_frame", progress=None)
    assert r["settings"]["reference_source"] == "action_frame"
    for row, clip in zip(r["clips"], dataset_split(world / "data", "test", 2)):
        k = action_frame_index(clip)
        assert row.get("reference_frame") == k
    assert any("reference_frame" in row for row in r["clips"])
    neutral = run_benchmark(world / "data", clips=1, probes_path=PROBES, model=_model(world), progress=None)
    assert neutral["settings"]["reference_source"] == "neutral" and "reference_frame" not in neutral["clips"][0]


def test_reference_source_action_frame_needs_labels_before_rendering(world, capsys):
    real = world / "real_oracle"
    shutil.copytree(world / "data", real)
    for p in real.glob("*/*/labels.npz"):
        p.unlink()
    argv = ["evaluate", "run", "--data", str(real), "--probes", str(PROBES), "--out", str(world / "bad.json"),
            "--mmdit", str(world / "m.safetensors"), "--vae", str(world / "v.safetensors"),
            "--text-encoder", str(world / "t.safetensors"), "--reference-source", "action_frame",
            "--work-dir", str(world / "bad_oracle")]
    assert main(argv) == 2
    assert "labels.npz" in capsys.readouterr().err
    assert not (world / "bad.json").exists() and not (world / "bad_oracle").exists()
    with pytest.raises(InputError, match="pass --mmdit too"):
        run_benchmark(world / "data", clips=1, probes_path=PROBES, reference_source="action_frame", progress=None)


def test_drift_and_table(world, capsys):
    out = world / "drift.json"
    d = run_drift(world / "data", seconds=4.0, window=1.0, probes_path=PROBES, model=_model(world), out=out,
                  label="full", progress=None)
    gt = d["summary"]["gt"]
    assert d["metrics"]["gt"]["frames"] == 96 and d["metrics"]["model"]["frames"] == 96
    assert _finite(gt["identity_first"]) and _finite(gt["identity_last"])
    # The last window repeats the first one's audio and actions, so the ground truth is the same there:
    # whatever differs in the model's video is drift, not which sentences fell in which window.
    assert d["last_window"] == "repeats_first" and d["clips_used"][-1] == d["clips_used"][0]
    assert d["targets"]["drift"] == 0.1
    assert abs(gt["drift_identity"]) < 0.02 and abs(gt["lip_sync_first"] - gt["lip_sync_last"]) < 0.05
    assert d["summary"]["model"]["drift"] is None or _finite(d["summary"]["model"]["drift"])
    assert len(d["clips_used"]) >= 2  # 41-frame clips: several are joined to make 4 s
    md = world / "table.md"
    assert main(["evaluate", "table", str(world / "full.json"), str(out), "--out-md", str(md)]) == 0
    table = md.read_text()
    assert "| full | schedule |" in table and "ground truth (ceiling)" in table and "target" in table
    assert table in capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("| full"))
    assert row.rstrip(" |").endswith("%")  # the drift file's number landed in the run's row


def test_drift_over_several_videos_averages_the_windows(world):
    d = run_drift(world / "data", seconds=2.0, window=0.5, videos=2, probes_path=PROBES, progress=None)
    assert d["videos"] == 2 and len(d["per_video"]) == 2
    firsts = [v["summary"]["gt"]["identity_first"] for v in d["per_video"]]
    assert d["summary"]["gt"]["identity_first"] == pytest.approx(sum(firsts) / 2)
    assert d["per_video"][0]["character"] != d["per_video"][1]["character"]  # another held-out character
    for bad in (0, 1.5, True):
        with pytest.raises(InputError, match="--videos"):
            run_drift(world / "data", seconds=2.0, window=0.5, videos=bad, probes_path=PROBES, progress=None)


def test_ground_truth_only_via_cli(world, capsys):
    out = world / "gt.json"
    assert main(["evaluate", "run", "--data", str(world / "data"), "--probes", str(PROBES), "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    g = r["summary"]["gt"]
    assert r["summary"]["model"] is None and g["clips"] == 2
    # Against another clip's audio the same videos are out of sync: the chance level is well below the ceiling.
    assert g["lip_sync_chance"] is None or g["lip_sync_chance"] < g["lip_sync"] - 0.2
    assert "tracks" not in r["clips"][0]["gt"]
    assert "identity" in capsys.readouterr().out


def test_skip_clips_measures_the_clips_after_the_reported_ones(world):
    # A validation slice: the clips after the first N, so settings are never chosen on the reported clips.
    both = [c.id for c in dataset_split(world / "data", "test")]
    assert [c.id for c in dataset_split(world / "data", "test", skip=1)] == both[1:]
    assert [c.id for c in dataset_split(world / "data", "test", 1, skip=0)] == both[:1]
    r = run_benchmark(world / "data", skip_clips=1, probes_path=PROBES, progress=None)
    assert [row["id"] for row in r["clips"]] == both[1:] and r["skip_clips"] == 1


def test_vae_round_trip_is_measured_next_to_the_ground_truth(world, capsys):
    out = world / "vae.json"
    assert main(["evaluate", "run", "--data", str(world / "data"), "--probes", str(PROBES), "--clips", "2",
                 "--vae", str(world / "v.safetensors"), "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    s = r["summary"]
    assert s["model"] is None and s["vae"]["clips"] == 2 and s["vae_file"].endswith("v.safetensors")
    v, g = r["clips"][0]["vae"], r["clips"][0]["gt"]
    assert v["frames"] == g["frames"] == 41 and "tracks" not in v  # every frame back, the padding dropped
    # A random VAE returns noise: the character is lost, and the ratio says so.
    assert v["identity"] < g["identity"] and s["vae_ratio"]["identity"] < 1
    # Noise does not look like the world's frames: far from the ground truth in the probe's feature space,
    # farther than two real clips are from each other.
    assert s["vae"]["fd"] > s["gt"]["fd_split_half"] > 0 and "features" not in v
    table = results_table([out])
    assert "| VAE round trip" in table and "ground truth (ceiling)" in table
    # The round trip needs no MMDiT, but drift does not measure it.
    assert main(["evaluate", "drift", "--data", str(world / "data"), "--probes", str(PROBES),
                 "--vae", str(world / "v.safetensors"), "--out", str(world / "vd.json")]) == 2
    assert "measured by `evaluate run` only" in capsys.readouterr().err
    with pytest.raises(InputError, match="drop one of them"):
        run_benchmark(world / "data", clips=1, probes_path=PROBES, model=_model(world), vae=world / "v.safetensors",
                      progress=None)


def test_runs_without_a_model_score_actions_on_the_segments_asked_for(world, capsys):
    # The round trip is the ceiling of a model rendering 33-frame segments only when it is scored on the same
    # spans: one per 33-frame segment (5 overlapping), not one per 121 frames.
    short = run_benchmark(world / "data", clips=1, probes_path=PROBES, segment_frames=9, progress=None)
    whole = run_benchmark(world / "data", clips=1, probes_path=PROBES, progress=None)
    n = short["clips"][0]["gt"]["frames"]  # 41 frames: segments of 9 frames adding 4 each
    assert short["summary"]["gt"]["action_units"] > whole["summary"]["gt"]["action_units"] >= 1
    assert (short["settings"]["segment_frames"], whole["settings"]["segment_frames"]) == (9, 121)
    assert len(short["clips"][0]["prompts"]) == 1 + -(-(n - 9) // 4)
    assert main(["evaluate", "run", "--data", str(world / "data"), "--probes", str(PROBES), "--clips", "1",
                 "--segment-frames", "30", "--out", str(world / "s.json")]) == 2
    assert "segment_frames must be 1 + 4k" in capsys.readouterr().err and not (world / "s.json").exists()
    with pytest.raises(InputError, match="scored on its own segments"):
        run_benchmark(world / "data", clips=1, probes_path=PROBES, model=_model(world), segment_frames=33,
                      progress=None)


def test_vae_round_trip_keeps_every_frame_and_pads_inside_windows():
    import numpy as np
    import torch

    class Identity(torch.nn.Module):  # latent = the video itself: the round trip must return it exactly
        temporal_factor = 4

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen = []

        def encode(self, x):
            self.seen.append(x.shape[2])
            return x

        def decode(self, z):
            return z

    from omnihuman_core.evaluate.run import vae_round_trip

    frames = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    vae = Identity()
    out = vae_round_trip(vae, frames, window=17)
    assert out.shape == frames.shape and np.array_equal(out, frames)
    assert vae.seen == [17, 17, 9]  # 40 = 17 + 17 + 6, the last one padded to 1 + 4k = 9


def test_real_data_layout_says_what_is_unavailable(world):
    real = world / "real"
    shutil.copytree(world / "data", real)
    (real / "index.json").unlink()
    for p in list(real.glob("*/*/meta.json")) + list(real.glob("*/*/labels.npz")):
        p.unlink()
    clips = dataset_split(real, "test")
    assert len(clips) == 2 and not clips[0].synthetic
    # a real clip's own schedule.json is its plan; without one, the caption covers the whole clip
    planned = Schedule.load(clips[0].dir / "schedule.json")
    assert clip_schedule(clips[0], 24.0, 41 / 24).shots == planned.shots
    for p in real.glob("*/*/schedule.json"):
        p.unlink()
    sched = clip_schedule(clips[0], 24.0, 41 / 24)
    assert [s.prompt for s in sched.shots] == [clips[0].caption]
    r = run_benchmark(real, clips=1, probes_path=PROBES, progress=None)
    assert {"reference_image", "probe_accuracy", "schedule"} <= set(r["unavailable"])
    assert _finite(r["summary"]["gt"]["identity"])
    with pytest.raises(InputError, match="no labels.npz"):
        from omnihuman_core.evaluate.train import train_probes

        train_probes(real, world / "p.safetensors", 0.1, progress=None)
    assert main(["evaluate", "drift", "--data", str(real), "--probes", str(PROBES), "--out", str(world / "x.json")]) == 2


@pytest.mark.parametrize("args,message", [
    (["--probes", "/nonexistent/probes.safetensors"], "train-probes"),
    (["--split", "val"], "no split 'val'"),
    (["--mmdit", "m.safetensors"], "needs --vae and --text-encoder"),
    (["--clips", "0"], "--clips must be a positive integer"),
    (["--skip-clips", "-1"], "--skip-clips must be 0 or a positive integer"),
    (["--skip-clips", "2"], "--skip-clips 2 leaves nothing: the 'test' split"),
    (["--vae", "/nonexistent/vae.safetensors"], "does not exist"),
    (["--text-encoder", "builtin:tiny"], "--text-encoder was given without --mmdit"),
    (["--audio-scale", "6"], "pass --mmdit too"),
    (["--no-first-frame-from-reference"], "pass --mmdit too"),
    (["--shift", "2"], "--steps / --shift / --solver set how a model samples; pass --mmdit too"),
])
def test_bad_input_exits_2(world, capsys, args, message):
    argv = ["evaluate", "run", "--data", str(world / "data"), "--out", str(world / "bad.json")]
    if "--probes" not in args:
        argv += ["--probes", str(PROBES)]
    assert main(argv + args) == 2
    assert message in capsys.readouterr().err
    assert not (world / "bad.json").exists()


def test_bad_guidance_scale_fails_before_rendering(world, capsys):
    argv = ["evaluate", "run", "--data", str(world / "data"), "--probes", str(PROBES), "--out", str(world / "bad.json"),
            "--mmdit", str(world / "m.safetensors"), "--vae", str(world / "v.safetensors"),
            "--text-encoder", str(world / "t.safetensors"), "--text-scale", "-1", "--work-dir", str(world / "bad")]
    assert main(argv) == 2
    assert "text_scale" in capsys.readouterr().err
    assert not (world / "bad.json").exists() and not (world / "bad").exists()
    assert main(argv[:-4] + ["--shift", "0", "--work-dir", str(world / "bad")]) == 2
    assert "shift must be a positive number" in capsys.readouterr().err
    assert not (world / "bad.json").exists() and not (world / "bad").exists()


def test_table_rejects_other_json(world):
    other = world / "other.json"
    other.write_text("{}")
    with pytest.raises(InputError, match="not an `evaluate run`"):
        results_table([other])


def test_check_probes_needs_labels(world, capsys):
    assert main(["evaluate", "check-probes", "--data", str(world / "data"), "--probes", str(PROBES)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["clips"] == 2 and rep["frames"] == 82
    assert rep["mouth_corr"] > 0.7  # 64 px renders, upscaled: still read
    real = world / "unlabelled"
    shutil.copytree(world / "data", real)
    for p in real.glob("*/*/labels.npz"):
        p.unlink()
    assert main(["evaluate", "check-probes", "--data", str(real), "--probes", str(PROBES)]) == 2
    assert "no labels.npz" in capsys.readouterr().err


def test_runs_over_disjoint_slices_merge_into_the_run_over_all_clips(world, capsys):
    from omnihuman_core.evaluate.run import merge_results

    common = dict(probes_path=PROBES, model=_model(world), progress=None)
    a = run_benchmark(world / "data", clips=1, out=world / "m_a.json", label="a", **common)
    run_benchmark(world / "data", skip_clips=1, out=world / "m_b.json", label="b", **common)
    whole = run_benchmark(world / "data", out=world / "m_all.json", label="all", **common)
    out = world / "merged.json"
    assert main(["evaluate", "merge", str(world / "m_a.json"), str(world / "m_b.json"), "--label", "all",
                 "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert [c["id"] for c in merged["clips"]] == [c["id"] for c in whole["clips"]]
    # The ground truth is read from the dataset, so its numbers must be the one run's exactly. (The model's
    # are compared with its slices' clips: x264 does not encode frames of some sizes, 32 px here, to the
    # same bytes twice, so a rerendered clip can score slightly differently; at 128 px it does.)
    for key, value in whole["summary"]["gt"].items():
        if key == "fd_split_half":  # needs every frame's features: not kept in results files
            assert merged["summary"]["gt"][key] is None
        elif key != "lip_sync_chance":  # a mouth against another clip's audio: which other clip differs
            assert merged["summary"]["gt"][key] == pytest.approx(value), key
    model = merged["summary"]["model"]
    assert model["fd"] is None and model["clips"] == 2 and model["action_units"] == whole["summary"]["model"]["action_units"]
    per_clip = [c["model"] for f in ("m_a", "m_b") for c in json.loads((world / f"{f}.json").read_text())["clips"]]
    assert model["identity"] == pytest.approx(sum(c["identity"] for c in per_clip) / 2)
    assert merged["summary"]["ratio"]["identity"] == pytest.approx(model["identity"] / merged["summary"]["gt"]["identity"])
    assert "fd" in merged["unavailable"] and [m["clips"] for m in merged["merged_from"]] == [1, 1]
    assert "| all |" in results_table([out])

    # Refused, naming what to fix, and nothing written: overlapping clips, other settings, labels that differ
    # without --label, a drift file, one file.
    bad = world / "bad.json"
    with pytest.raises(InputError, match="is in both"):
        merge_results([world / "m_a.json", world / "m_all.json"], bad, label="x")
    other = json.loads((world / "m_b.json").read_text())
    other["settings"]["text_scale"] = 9.0
    (world / "m_other.json").write_text(json.dumps(other))
    with pytest.raises(InputError, match="differ in 'settings'"):
        merge_results([world / "m_a.json", world / "m_other.json"], bad, label="x")
    with pytest.raises(InputError, match="name the merged run with --label"):
        merge_results([world / "m_a.json", world / "m_b.json"], bad)
    drift = dict(a, kind="drift")
    (world / "m_drift.json").write_text(json.dumps(drift, default=str))
    with pytest.raises(InputError, match="only `evaluate run` files are merged"):
        merge_results([world / "m_drift.json", world / "m_b.json"], bad, label="x")
    assert main(["evaluate", "merge", str(world / "m_a.json"), "--out", str(bad)]) == 2
    assert "at least two" in capsys.readouterr().err and not bad.exists()
