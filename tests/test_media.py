"""media: image loading + resize policy, and the streaming MP4 writer / reader."""

import gc
import struct
import weakref
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from omnihuman_core.errors import InputError
from omnihuman_core.media import (
    BACKGROUND, VideoWriter, choose_size, fit_image, image_from_array, load_image, probe_video,
    read_video_audio, read_video_frames,
)

# ------------------------------------------------------------------------------------- images


def png_header_only(path, w, h):
    """A PNG that declares w x h but carries no pixels: tests that size checks run before decoding."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def test_rgb_png(tmp_path):
    p = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (10, 20, 30)).save(p)
    img = load_image(p)
    assert img.mode == "RGB" and img.size == (40, 30) and img.getpixel((5, 5)) == (10, 20, 30)


def test_grayscale_is_converted(tmp_path):
    p = tmp_path / "g.png"
    Image.new("L", (8, 8), 77).save(p)
    img = load_image(p)
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (77, 77, 77)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_over_mid_grey(tmp_path, mode):
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # fully transparent...
    rgba.paste((255, 0, 0, 255), (0, 0, 4, 8))  # ...except an opaque red left half
    if mode == "LA":
        img = rgba.convert("LA")
    elif mode == "P":
        img = rgba.convert("P", palette=Image.Palette.ADAPTIVE)
        img.info["transparency"] = img.getpixel((7, 7))
    else:
        img = rgba
    p = tmp_path / f"t_{mode}.png"
    img.save(p, transparency=img.info.get("transparency")) if mode == "P" else img.save(p)
    out = load_image(p)
    assert out.mode == "RGB" and out.getpixel((7, 7)) == BACKGROUND == (128, 128, 128)
    assert out.getpixel((0, 0)) != BACKGROUND


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path):
    a = np.array([[0, 32768], [65535, 1000]], dtype=np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(a).save(p)
    assert Image.open(p).mode.startswith("I")
    px = np.asarray(load_image(p))[..., 0]
    assert px.tolist() == [[0, 128], [255, 4]]


def test_exif_orientation_is_honoured(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 255, 255))
    img.paste((255, 0, 0), (0, 0, 10, 20))  # red band on the stored left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / "rot.jpg"
    img.save(p, exif=exif, quality=95)
    out = load_image(p)
    assert out.size == (20, 40)
    assert out.getpixel((10, 2))[1] < 80  # the red band is now at the top


def test_huge_images_are_refused_before_decoding(tmp_path):
    with pytest.raises(InputError, match="10000x100 px.*8192 px a side.*decompression-bomb"):
        load_image(png_header_only(tmp_path / "wide.png", 10000, 100))
    with pytest.raises(InputError, match="56 Mpx"):
        load_image(png_header_only(tmp_path / "big.png", 8000, 7000))


def test_large_images_are_downscaled(tmp_path):
    p = tmp_path / "large.png"
    Image.new("RGB", (5000, 100), (1, 2, 3)).save(p)
    img = load_image(p)
    assert img.size == (4096, 82)
    assert load_image(p, max_side=1000).size == (1000, 20)


def test_missing_empty_corrupt_and_not_an_image(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty \\(0 bytes\\)"):
        load_image(empty)
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    bad = tmp_path / "truncated.png"
    bad.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_image(bad)
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture\n" * 20)
    with pytest.raises(InputError, match="not an image"):
        load_image(text)
    with pytest.raises(InputError, match="is a folder"):
        load_image(tmp_path)


def test_image_from_array_layouts():
    comfy = torch.full((1, 6, 8, 3), 0.5)  # ComfyUI IMAGE, 0..1
    assert image_from_array(comfy).getpixel((0, 0)) == (128, 128, 128)
    chw = torch.zeros(3, 6, 8)  # core, -1..1
    img = image_from_array(chw, value_range=(-1, 1))
    assert img.size == (8, 6) and img.getpixel((0, 0)) == (128, 128, 128)
    assert image_from_array(np.full((6, 8), 65535, np.uint16)).getpixel((0, 0)) == (255, 255, 255)
    rgba = np.zeros((6, 8, 4), np.uint8)
    assert image_from_array(rgba).getpixel((0, 0)) == BACKGROUND


@pytest.mark.parametrize("bad,match", [
    (torch.full((1, 6, 8, 3), 2.0), "outside value_range.*value_range=\\(-1, 1\\)"),
    (torch.full((6, 8, 3), float("nan")), "NaN"),
    (torch.zeros(2, 6, 8, 3), "pass one image"),
    (np.zeros((6, 8, 7)), "expected \\[H, W\\]"),
    ("face.png", "numpy array, torch tensor or PIL"),
])
def test_image_from_array_bad_input(bad, match):
    with pytest.raises(InputError, match=match):
        image_from_array(bad)


def test_fit_image_covers_and_centre_crops():
    img = Image.new("RGB", (300, 100), (0, 0, 255))
    img.paste((0, 255, 0), (100, 0, 200, 100))  # green centre third, blue sides
    t = fit_image(img, 64, 64)
    assert t.shape == (3, 64, 64) and t.dtype == torch.float32
    assert float(t.min()) >= -1 and float(t.max()) <= 1
    assert torch.allclose(t[:, 32, 32], torch.tensor([-1.0, 1.0, -1.0]), atol=0.02)
    assert (t[1] > 0.9).float().mean() > 0.95  # the crop is the green centre: nothing stretched
    wide = fit_image(Image.new("RGB", (50, 200), (255, 0, 0)), 96, 32, dtype=torch.bfloat16)
    assert wide.shape == (3, 32, 96) and wide.dtype == torch.bfloat16
    with pytest.raises(InputError, match="width must be a positive integer"):
        fit_image(img, 0, 64)


def test_choose_size():
    assert choose_size(1920, 1080, 480, 16) == (848, 480)
    assert choose_size(1080, 1920, 480, 16) == (480, 848)
    assert choose_size(512, 512, 480) == (480, 480)
    assert choose_size(3000, 1000, 480, 16) == (1440, 480)
    with pytest.raises(InputError, match="not a multiple of 16; use 480 or 496"):
        choose_size(100, 100, 490, 16)


# -------------------------------------------------------------------------------------- video


def tone(seconds, rate=16000, freq=440.0):
    return torch.sin(torch.arange(int(seconds * rate)) / rate * 2 * np.pi * freq) * 0.3


def test_writer_25_frames_24fps_with_one_second_of_audio(tmp_path):
    path = tmp_path / "out" / "clip.mp4"  # the folder is created
    with VideoWriter(path, 24, 64, 48, audio=(tone(1.0), 16000)) as w:
        for i in range(25):
            w.write(np.full((48, 64, 3), i * 10, np.uint8))
    info = probe_video(path)
    assert info["video_codec"] == "h264" and info["audio_codec"] == "aac"
    assert info["frames"] == 25 and info["fps"] == 24 and (info["width"], info["height"]) == (64, 48)
    assert info["duration"] == pytest.approx(25 / 24, abs=1e-3)
    assert abs(info["audio_duration"] - info["duration"]) < 1 / 24  # padded to the video's length
    frames = read_video_frames(path)
    assert frames.shape == (25, 48, 64, 3) and frames.dtype == np.uint8
    assert np.abs(frames[:, 10, 10, 0].astype(int) - np.arange(25) * 10).max() <= 3
    assert read_video_frames(path, start=20).shape[0] == 5
    audio = read_video_audio(path)
    assert audio.duration == pytest.approx(25 / 24, abs=1 / 24)
    assert float(audio.waveform[:8000].abs().max()) > 0.2  # the tone made it through


def test_writer_trims_long_audio_and_accepts_other_forms(tmp_path):
    from omnihuman_core.audio import audio_from_array

    path = tmp_path / "trim.mp4"
    with VideoWriter(path, 25, 32, 32, audio=audio_from_array(tone(3.0), 16000)) as w:
        w.write(torch.zeros(13, 32, 32, 3, dtype=torch.uint8))
    info = probe_video(path)
    assert info["frames"] == 13 and abs(info["audio_duration"] - 13 / 25) < 1 / 25
    comfy = {"waveform": tone(1.0, 22050)[None, None].repeat(1, 2, 1), "sample_rate": 22050}
    with VideoWriter(tmp_path / "comfy.mp4", 25, 32, 32, audio=comfy) as w:
        w.write(np.zeros((25, 32, 32, 3), np.uint8))
    assert probe_video(tmp_path / "comfy.mp4")["audio_duration"] == pytest.approx(1.0, abs=0.04)


def test_writer_streams_instead_of_buffering(tmp_path):
    path = tmp_path / "stream.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(path, 24, 96, 64, audio=(tone(5.0), 16000), preset="ultrafast") as w:
        t = torch.from_numpy(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
        ref = weakref.ref(t)
        w.write(t)
        del t
        gc.collect()
        assert ref() is None  # the writer kept no reference to the frame
        for _ in range(79):
            w.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
        assert path.stat().st_size > 100_000  # packets reached the file before close()
    assert probe_video(path)["frames"] == 80


def test_colours_survive_the_roundtrip(tmp_path):
    img = np.zeros((48, 64, 3), np.uint8)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 150, 100)]  # last: a skin tone
    for i, c in enumerate(colours):
        img[:, 16 * i:16 * (i + 1)] = c
    with VideoWriter(tmp_path / "c.mp4", 24, 64, 48, crf=10) as w:
        w.write(img)
    back = read_video_frames(tmp_path / "c.mp4")[0]
    for i, c in enumerate(colours):
        assert np.abs(back[24, 16 * i + 8].astype(int) - c).max() <= 4


@pytest.mark.parametrize("kwargs,match", [
    (dict(preset="warp"), "preset must be one of"),
    (dict(width=65), "even width and height; use 64x48"),
    (dict(fps=0), "fps"),
    (dict(crf=60), "crf"),
    (dict(audio=torch.zeros(100)), "sample rate"),
])
def test_writer_bad_arguments(tmp_path, kwargs, match):
    args = dict(path=tmp_path / "x.mp4", fps=24, width=64, height=48) | kwargs
    with pytest.raises(InputError, match=match):
        VideoWriter(**args)


def test_writer_unwritable_folder(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    with pytest.raises(InputError, match="cannot be created"):
        VideoWriter(blocker / "out.mp4", 24, 64, 48)
    with pytest.raises(InputError, match="is a folder"):
        VideoWriter(tmp_path, 24, 64, 48)


def test_writer_bad_frames_and_empty_video(tmp_path):
    w = VideoWriter(tmp_path / "f.mp4", 24, 64, 48)
    with pytest.raises(InputError, match="uint8"):
        w.write(np.zeros((1, 48, 64, 3), np.float32))
    with pytest.raises(InputError, match="expects \\[n, 48, 64, 3\\]"):
        w.write(np.zeros((1, 64, 48, 3), np.uint8))
    with pytest.raises(InputError, match="no frames were written"):
        w.close()
    assert not (tmp_path / "f.mp4").exists()
    with pytest.raises(InputError, match="closed"):
        w.write(np.zeros((48, 64, 3), np.uint8))


def test_probe_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        probe_video(tmp_path / "none.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01garbage" * 50)
    with pytest.raises(InputError, match="cannot be read|no video stream"):
        probe_video(junk)
