"""Dataset scanning and validation, VAE windows, the MMDiT latent cache (contract batch) and its batches."""

import json
import shutil

import numpy as np
import pytest
import torch

from omnihuman_core.audio import MelEncoder, frame_features, load_audio, pack_latent_frames
from omnihuman_core.errors import InputError
from omnihuman_core.media import VideoWriter, read_video_frames
from omnihuman_core.synth import write_dataset
from omnihuman_core.synth.speech import write_wav
from omnihuman_core.train.data import (LatentBatches, LatentCache, VideoWindows, build_latent_cache, clip_folders,
                                       scan_dataset)
from omnihuman_core.vae import CausalVideoVAE

FRAMES = 29  # a 9-frame window + 16 frames to the pseudo last frame (delta 4) fit, with room to move


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, 5, seed=3, size=64, frames=FRAMES, test_fraction=0.0, speech="babble")
    return root


def tiny_vae(seed=0):
    torch.manual_seed(seed)
    return CausalVideoVAE.from_config("tiny").eval()


def copy(dataset, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(dataset, dst)
    return dst


def test_scan_reads_every_clip(dataset):
    clips = scan_dataset(dataset, log=None)
    assert len(clips) == 5
    c = clips[0]
    assert (c.frames, c.height, c.width, c.fps) == (FRAMES, 64, 64, 24.0)
    assert c.caption and c.audio_seconds == pytest.approx(FRAMES / 24, abs=1e-3)


def test_bad_clips_are_named_and_skipped_then_an_empty_set_is_an_error(dataset, tmp_path):
    root = copy(dataset, tmp_path)
    folders = clip_folders(root)
    (folders[0] / "caption.txt").unlink()
    write_wav(folders[1] / "audio.wav", np.zeros(8000, np.float32))  # 0.5 s of audio for a 1.2 s video
    with VideoWriter(folders[2] / "video.mp4", 24.0, 32, 32) as w:  # another frame size than the other clips
        w.write(np.zeros((FRAMES, 32, 32, 3), np.uint8))
    messages = []
    clips = scan_dataset(root, log=messages.append)
    assert [c.clip_id for c in clips] == [folders[3].name, folders[4].name]
    warning = messages[0]
    assert "skipped 3 of 5" in warning
    assert f"{folders[0].name}: missing caption.txt" in warning
    assert f"{folders[1].name}: audio.wav is 0.50 s but the video 1.21 s" in warning
    assert f"{folders[2].name}: frame size 32x32 differs from the dataset's 64x64" in warning
    (folders[3] / "video.mp4").write_bytes(b"not a video at all")
    (folders[2] / "video.mp4").unlink()
    messages.clear()
    assert [c.clip_id for c in scan_dataset(root, log=messages.append)] == [folders[4].name]
    assert f"{folders[3].name}: video.mp4 unreadable" in messages[0]
    (folders[4] / "audio.wav").unlink()
    with pytest.raises(InputError, match=str(root)):
        scan_dataset(root, log=None)


def test_folders_without_index_and_missing_folders(dataset, tmp_path):
    root = copy(dataset, tmp_path)
    (root / "index.json").unlink()
    assert len(scan_dataset(root, log=None)) == 5  # every sub-folder holding a video.mp4 is a clip
    with pytest.raises(InputError, match="does not exist"):
        scan_dataset(tmp_path / "nowhere", log=None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no clips found"):
        scan_dataset(tmp_path / "empty", log=None)


def test_video_windows_are_a_pure_function_of_the_step(dataset):
    clips = scan_dataset(dataset, need_audio=False, need_caption=False, log=None)
    w = VideoWindows(clips, frames=9, crop=32, batch_size=3, seed=1, log=None)
    b = w.batch(5)
    assert b.shape == (3, 3, 9, 32, 32) and b.dtype == torch.float32
    assert -1.0 <= float(b.min()) and float(b.max()) <= 1.0
    assert torch.equal(b, w.batch(5)) and not torch.equal(b, w.batch(6))
    other_rank = VideoWindows(clips, frames=9, crop=32, batch_size=3, seed=1, rank=1, world=2, log=None)
    assert len(other_rank.videos) == 2  # rank 1 of 2 holds clips 1 and 3
    with pytest.raises(InputError, match="1 \\+ 4k"):
        VideoWindows(clips, frames=8, crop=32, batch_size=1, log=None)


def test_face_crops_cover_the_face_box(dataset):
    from omnihuman_core.synth.dataset import load_labels

    clips = scan_dataset(dataset, need_audio=False, need_caption=False, log=None)
    w = VideoWindows(clips, frames=9, crop=24, batch_size=1, seed=2, face_crops=1.0, flip=False, log=None)
    # Rebuild every crop's window from the same draws and check the face centre lies in its middle half.
    for step in range(20):
        rng = np.random.default_rng([2, 0, step, 0xFA])
        i = int(rng.integers(len(w.videos)))
        s = int(rng.integers(w.videos[i].shape[0] - 9 + 1))
        rng.integers(64 - 24 + 1), rng.integers(64 - 24 + 1), rng.random()
        jy, jx = rng.random(), rng.random()
        x0, y0, x1, y1 = load_labels(clips[i].folder)["face_box"][s + 4]
        y = int(np.clip((y0 + y1) / 2 - 24 * (0.25 + 0.5 * jy), 0, 64 - 24))
        x = int(np.clip((x0 + x1) / 2 - 24 * (0.25 + 0.5 * jx), 0, 64 - 24))
        expected = torch.from_numpy(w.videos[i][s:s + 9, y:y + 24, x:x + 24].copy()).permute(3, 0, 1, 2) / 127.5 - 1
        assert torch.equal(w.batch(step)[0], expected)
        assert y <= (y0 + y1) / 2 <= y + 24 and x <= (x0 + x1) / 2 <= x + 24
    with pytest.raises(InputError, match="face_crops"):
        VideoWindows(clips, frames=9, crop=24, batch_size=1, face_crops=2.0, log=None)


@pytest.fixture(scope="module")
def cache(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache")
    # Module fixtures run before the suite's single-thread fixture; bit-exact comparisons need the same threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return build_latent_cache(dataset, tiny_vae(), out, frames=9, windows_per_clip=2, seed=0, log=None)
    finally:
        torch.set_num_threads(threads)


def test_cache_holds_the_contract_batch_made_as_inference_makes_it(dataset, cache):
    vae = tiny_vae()
    assert len(cache) == 10
    assert cache.tensors["latents"].shape == (10, 4, 3, 8, 8)
    assert cache.tensors["last_latent"].shape == (10, 4, 1, 8, 8)
    assert cache.tensors["reference_latent"].shape == (10, 4, 1, 8, 8)
    assert cache.tensors["audio"].shape == (10, 3, 4, 400)
    manifest = json.loads((cache.path / "manifest.json").read_text())
    window = manifest["shards"][0]["windows"][1]
    i = 1
    folder = dataset / "train" / window["clip_id"]
    frames = torch.from_numpy(read_video_frames(folder / "video.mp4")).permute(3, 0, 1, 2).float() / 127.5 - 1
    s, last, ref = window["start"], window["last_frame"], window["reference_frame"]
    assert last == s + 9 - 1 + 16 and not s <= ref < s + 9
    with torch.no_grad():
        lat = vae.encode(frames[None, :, s:s + 9])
        last_lat = vae.encode(frames[None, :, last:last + 1])
        ref_lat = vae.encode(frames[None, :, ref:ref + 1])
    tol = dict(atol=2e-3, rtol=2e-3)  # stored in float16
    torch.testing.assert_close(cache.tensors["latents"][i].float(), lat[0], **tol)
    torch.testing.assert_close(cache.tensors["last_latent"][i].float(), last_lat[0], **tol)
    torch.testing.assert_close(cache.tensors["reference_latent"][i].float(), ref_lat[0], **tol)
    # Audio: the renderer's path (features of the whole clip, per frame, sliced, packed per latent frame).
    mel = MelEncoder()
    feats = mel.encode(load_audio(folder / "audio.wav", allow_silent=True).waveform).float()
    per_frame = frame_features(feats, mel.feature_rate, 24.0, FRAMES, 5)
    torch.testing.assert_close(cache.tensors["audio"][i].float(), pack_latent_frames(per_frame[s:s + 9]), **tol)
    # Caption: the clip's schedule.json shot covering most of the window (as a render segment's prompt).
    from omnihuman_core.schedule import Schedule

    plan = Schedule.load(folder / "schedule.json")
    assert cache.captions[i] == plan.shots[plan.shot_between(s / 24.0, (s + 9) / 24.0)].text()


def test_window_captions_come_from_the_schedule_else_the_caption(dataset, tmp_path):
    from omnihuman_core.schedule import Schedule, Shot

    root = copy(dataset, tmp_path)
    folders = clip_folders(root)
    Schedule(fps=24.0, duration=FRAMES / 24, shots=[Shot(0.0, 0.5, True, prompt="first shot"),
                                                    Shot(0.5, FRAMES / 24, True, prompt="second shot")]
             ).save(folders[0] / "schedule.json")
    (folders[1] / "schedule.json").unlink()
    (folders[2] / "schedule.json").write_text("{not json")
    messages = []
    clips = {c.clip_id: c for c in scan_dataset(root, log=messages.append)}
    assert folders[2].name not in clips and "schedule.json is not a valid schedule" in messages[0]
    first = clips[folders[0].name]
    assert first.window_caption(0, 9) == "first shot"  # 0-0.375 s: inside the first shot
    assert first.window_caption(12, 9) == "second shot"  # 0.5-0.875 s
    assert first.window_caption(6, 9) == "first shot"  # 0.25-0.625 s: mostly in the first
    assert first.window_caption(9, 9) == "second shot"  # 0.375-0.75 s: mostly in the second
    caption = (folders[1] / "caption.txt").read_text().strip()
    assert clips[folders[1].name].window_caption(3, 9) == caption


def test_a_complete_cache_of_unchanged_files_is_reused_without_probing_the_clips(dataset, tmp_path, monkeypatch):
    import omnihuman_core.train.data as data

    root = copy(dataset, tmp_path)
    build_latent_cache(root, tiny_vae(), tmp_path / "cache", frames=9, windows_per_clip=1, log=None)
    probed = []
    real = data._probe_clip
    monkeypatch.setattr(data, "_probe_clip", lambda f, *a: probed.append(f) or real(f, *a))
    build_latent_cache(root, tiny_vae(), tmp_path / "cache", frames=9, windows_per_clip=1, log=None)
    assert probed == []
    (clip_folders(root)[0] / "caption.txt").write_text("a new caption that is longer\n")  # a file changed
    build_latent_cache(root, tiny_vae(), tmp_path / "cache", frames=9, windows_per_clip=1, log=None)
    assert len(probed) == 5


def test_cache_is_reused_resumed_and_rebuilt_for_another_vae(dataset, cache, tmp_path, monkeypatch):
    import omnihuman_core.media as media

    where = tmp_path / "cache"

    real = media.read_video_frames
    calls = []

    def dies_on_third(path, *a, **k):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process is killed mid-build
        return real(path, *a, **k)

    monkeypatch.setattr(media, "read_video_frames", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        build_latent_cache(dataset, tiny_vae(), where, frames=9, windows_per_clip=2, clips_per_shard=1, log=None)
    calls.clear()
    monkeypatch.setattr(media, "read_video_frames", lambda p, *a, **k: calls.append(p) or real(p, *a, **k))
    resumed = build_latent_cache(dataset, tiny_vae(), where, frames=9, windows_per_clip=2, clips_per_shard=1,
                                 log=None)
    assert len(calls) == 3  # only the clips not yet in a shard
    for k in LatentBatches.KEYS:
        assert torch.equal(resumed.tensors[k], cache.tensors[k])
    assert resumed.captions == cache.captions
    calls.clear()
    build_latent_cache(dataset, tiny_vae(), where, frames=9, windows_per_clip=2, clips_per_shard=1, log=None)
    assert calls == []  # complete and up to date
    messages = []
    other = build_latent_cache(dataset, tiny_vae(seed=1), where, frames=9, windows_per_clip=2, log=messages.append)
    assert any("another VAE" in m for m in messages)
    assert not torch.equal(other.tensors["latents"], cache.tensors["latents"])
    assert sorted(p.name for p in where.iterdir()) == ["manifest.json", "shard_00000.safetensors"]
    # The old cache was moved aside, not deleted, and still loads.
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("cache.")]
    assert len(kept) == 1 and any(str(kept[0]) in m for m in messages)
    old = LatentCache.load(kept[0])
    assert torch.equal(old.tensors["latents"], cache.tensors["latents"])


def test_cache_built_from_a_vae_file_is_reused_with_the_loaded_module(dataset, tmp_path):
    """`train demo` builds the cache from the VAE's path, the MMDiT stages check it with the loaded module:
    the same weights must give the same fingerprint (once a 10-minute cache was rebuilt from scratch)."""
    from omnihuman_core.weights import save_safetensors

    vae = tiny_vae()
    path = tmp_path / "vae.safetensors"
    save_safetensors(path, vae.state_dict(), "vae", vae.config.to_dict(),
                     extra={"note": "metadata does not change a latent"})
    build_latent_cache(dataset, path, tmp_path / "cache", frames=9, windows_per_clip=2, log=None)
    messages = []
    build_latent_cache(dataset, tiny_vae(), tmp_path / "cache", frames=9, windows_per_clip=2, log=messages.append)
    assert not any("another VAE" in m for m in messages), messages
    assert any("up to date" in m for m in messages), messages
    # A half-precision copy of the same VAE has other weights: the message names the file that built it.
    half = tmp_path / "vae_half.safetensors"
    save_safetensors(half, {k: v.half() for k, v in vae.state_dict().items()}, "vae", vae.config.to_dict())
    messages = []
    build_latent_cache(dataset, half, tmp_path / "cache", frames=9, windows_per_clip=2, log=messages.append)
    assert any(f"built with {path.resolve()}" in m for m in messages), messages


def test_clips_too_short_for_the_pseudo_last_frame_are_named(dataset, tmp_path):
    with pytest.raises(InputError) as e:
        build_latent_cache(dataset, tiny_vae(), tmp_path, frames=17, delta=4.0, log=None)
    assert f"{FRAMES} frames, a training window needs 33" in str(e.value)


def test_latent_batches_order_resume_and_sharding(cache):
    b = LatentBatches(cache, batch_size=2, seed=5)
    batch = b.batch(3)
    assert batch["latents"].dtype == torch.float32 and batch["latents"].shape == (2, 4, 3, 8, 8)
    assert batch["audio"].shape == (2, 3, 4, 400) and len(batch["captions"]) == len(batch["clip_ids"]) == 2
    it = b.iterate(start=3)
    assert b.indices(3) == LatentBatches(cache, 2, seed=5).indices(3)
    assert torch.equal(next(it)["latents"], batch["latents"])
    epoch = [i for k in range(b.per_epoch) for i in b.indices(k)]
    assert len(set(epoch)) == len(epoch) == 10  # each window once per epoch
    r0, r1 = LatentBatches(cache, 2, seed=5, rank=0, world=2), LatentBatches(cache, 2, seed=5, rank=1, world=2)
    seen = [set(r.indices(k)) for r in (r0, r1) for k in range(r0.per_epoch)]
    assert len(set().union(*seen)) == sum(len(s) for s in seen)  # ranks never share a window in an epoch
    with pytest.raises(InputError, match="batch size"):
        LatentBatches(cache, batch_size=11)


def test_cache_load_refuses_an_incomplete_folder(tmp_path):
    with pytest.raises(InputError, match="no complete latent cache"):
        LatentCache.load(tmp_path)
