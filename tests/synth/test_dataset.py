"""The dataset writer: layout, index, held-out identities, determinism, resume."""

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest

from omnihuman_core.errors import InputError
from omnihuman_core.synth import generate_clip, load_labels, load_meta, read_index, read_wav, write_dataset
from omnihuman_core.synth.dataset import CLIP_FILES, identity_plan

KW = dict(size=64, fps=12.0, frames=9, speech="babble", clips_per_identity=2, test_fraction=0.34)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    index = write_dataset(out, 6, seed=3, **KW)
    return out, index


def test_layout_and_index(dataset):
    out, index = dataset
    assert read_index(out) == json.loads(json.dumps(index))
    assert index["settings"]["speech"] == "babble"
    entries = index["splits"]["train"] + index["splits"]["test"]
    assert len(entries) == 6 and index["splits"]["test"]
    for e in entries:
        d = out / e["path"]
        assert sorted(os.listdir(d)) == sorted(CLIP_FILES)
        assert (d / "caption.txt").read_text().strip() == e["caption"]
        wav, rate = read_wav(d / "audio.wav")
        assert rate == 16000 and wav.size == round(9 / 12 * 16000)
        labels = load_labels(d)
        assert labels["mouth"].shape == (9,) and labels["hands"].shape == (9, 2, 2)
        assert int(labels["identity_id"]) == e["identity"] == load_meta(d)["identity_id"]
    assert not any(p.name.endswith(".tmp") for p in (out / "train").iterdir())


def test_video_is_h264_with_all_frames(dataset):
    from omnihuman_core.media import probe_video

    out, index = dataset
    info = probe_video(out / index["splits"]["train"][0]["path"] / "video.mp4")
    assert (info["video_codec"], info["frames"], info["width"], info["height"]) == ("h264", 9, 64, 64)
    assert info["audio_codec"] is None  # audio.wav holds the sound; --video-audio adds an AAC copy


def test_test_identities_are_unseen(dataset):
    out, index = dataset
    train_ids = {e["identity"] for e in index["splits"]["train"]}
    test_ids = {e["identity"] for e in index["splits"]["test"]}
    assert test_ids and not train_ids & test_ids
    assert set(index["identities"]["test"]) == test_ids
    specs = lambda split: {json.dumps(load_meta(out / e["path"])["character"], sort_keys=True)  # noqa: E731
                           for e in index["splits"][split]}
    assert not specs("train") & specs("test")


def test_identity_plan_properties():
    plan = identity_plan(100, seed=1, test_fraction=0.2, clips_per_identity=4)
    ids = {p["identity"] for p in plan}
    assert len(ids) == 25
    test = {p["identity"] for p in plan if p["split"] == "test"}
    assert len(test) == 5 and all(p["split"] == "test" for p in plan if p["identity"] in test)
    assert plan == identity_plan(100, seed=1, test_fraction=0.2, clips_per_identity=4)
    assert len({p["clip_seed"] for p in plan}) == 100


def test_files_match_a_fresh_render(dataset):
    """Same seed -> same raw data: regenerate one clip and compare audio, labels and caption."""
    from omnihuman_core.synth import sample_character

    out, index = dataset
    e = index["splits"]["test"][0]
    d = out / e["path"]
    meta = load_meta(d)
    plan = {p["clip_id"]: p for p in identity_plan(6, 3, KW["test_fraction"], KW["clips_per_identity"])}[e["id"]]
    clip = generate_clip(sample_character(plan["identity_seed"]), plan["clip_seed"], n_frames=9, fps=12.0, size=64,
                         speech="babble")
    labels = load_labels(d)
    for k, v in clip.labels.items():
        assert np.array_equal(labels[k], v), k
    wav, _ = read_wav(d / "audio.wav")
    assert np.allclose(wav, clip.waveform, atol=1 / 32767 + 1e-6)
    assert clip.caption == e["caption"] and meta["actions"] == clip.meta["actions"]


def test_resume_skips_finished_clips_and_rejects_other_settings(dataset):
    out, index = dataset
    video = out / index["splits"]["train"][0]["path"] / "video.mp4"
    before = video.stat().st_mtime_ns
    assert write_dataset(out, 6, seed=3, **KW)["splits"] == index["splits"]
    assert video.stat().st_mtime_ns == before
    with pytest.raises(InputError, match="other settings"):
        write_dataset(out, 6, seed=4, **KW)


def test_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="n_clips"):
        write_dataset(tmp_path, 0)
    with pytest.raises(InputError, match="test_fraction"):
        write_dataset(tmp_path, 2, test_fraction=1.5)
    with pytest.raises(InputError, match="size"):
        write_dataset(tmp_path, 2, size=10)


def test_cli(tmp_path, capsys):
    from omnihuman_core.synth.cli import add_synth_parser

    parser = argparse.ArgumentParser()
    add_synth_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["synth", "--out", str(tmp_path / "ds"), "--clips", "2", "--seed", "1", "--size", "32",
                              "--frames", "5", "--speech", "babble", "--video-audio", "--clips-per-identity", "1"])
    assert args.func(args) == 0
    assert "1 train clips" in capsys.readouterr().out
    from omnihuman_core.media import probe_video

    clip = tmp_path / "ds" / read_index(tmp_path / "ds")["splits"]["train"][0]["path"]
    assert probe_video(clip / "video.mp4")["audio_codec"] == "aac"
    assert len(read_index(tmp_path / "ds")["splits"]["train"]) == 1  # 1 of 2 identities held out
    args = parser.parse_args(["synth-examples", "--out", str(tmp_path / "ex"), "--speech", "babble"])
    assert args.func(args) == 0
    names = sorted(p.name for p in (tmp_path / "ex").iterdir())
    assert names == ["character.png", "prompt.txt", "robot.png", "speech.wav"]
    assert sum(p.stat().st_size for p in (tmp_path / "ex").iterdir()) < 200_000
    # Byte for byte the shipped example prompt (scripts/demo.sh plans the example with it).
    shipped = Path(__file__).resolve().parents[2] / "example_inputs" / "prompt.txt"
    assert (tmp_path / "ex" / "prompt.txt").read_bytes() == shipped.read_bytes()
    wav, rate = read_wav(tmp_path / "ex" / "speech.wav")
    assert rate == 16000 and abs(wav.size / rate - 5.0) < 0.01
