"""scripts/mouth_by_speech.py: the mouth opening in speech and in silence, renders against ground truth."""

import json
import shutil

import pytest

from omnihuman_core.errors import InputError
from omnihuman_core.evaluate.run import dataset_split
from omnihuman_core.synth import write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("mouth")
    write_dataset(root, 4, seed=3, size=64, frames=49, test_fraction=0.5, clips_per_identity=1, speech="babble")
    return root


def test_ground_truth_as_renders_scores_like_the_ground_truth(dataset, tmp_path, capsys, script):
    clips = dataset_split(dataset, "test", 2)
    for clip in clips:
        shutil.copy(clip.dir / "video.mp4", tmp_path / f"{clip.id}.mp4")
    assert script("mouth_by_speech").main(["--data", str(dataset), "--renders", str(tmp_path), "--clips", "2"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{"):])
    assert [r["clip"] for r in result["clips"]] == [c.id for c in clips]
    for row in result["clips"]:
        assert row["model"] == row["gt"]  # the same frames read the same
        assert row["speech_frames"] + row["silent_frames"] > 0
    gap = result["mean_speech_minus_silence"]
    # Both clips of this seed have speech and pauses: the ground truth opens the mouth for speech.
    assert gap["gt"] is not None and gap["model"] == gap["gt"] and gap["gt"] > 0.1


def test_missing_renders_are_named_before_any_work(dataset, tmp_path, script):
    with pytest.raises(InputError, match="has no render of .*--work-dir"):
        script("mouth_by_speech").main(["--data", str(dataset), "--renders", str(tmp_path), "--clips", "2"])
