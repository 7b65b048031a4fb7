"""nodes/_comfy.py against stand-ins for the ComfyUI 0.8 functions it calls: the model folder is added to,
never replaced; progress goes to ComfyUI's bar with a JPEG preview; Cancel uses ComfyUI's interrupt."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from omnihuman_core.errors import Cancelled


class FakeFolderPaths:
    """folder_paths' registry semantics: add_model_folder_path appends (or prepends with is_default)."""

    models_dir = "/comfy/models"

    def __init__(self, user_paths=None):
        self.folder_names_and_paths = {}
        if user_paths:  # what extra_model_paths.yaml set before the pack loaded
            self.folder_names_and_paths["omnihuman"] = (list(user_paths), set())

    def add_model_folder_path(self, name, path, is_default=False):
        paths, _ = self.folder_names_and_paths.setdefault(name, ([], set()))
        if path not in paths:
            paths.insert(0, path) if is_default else paths.append(path)

    def get_folder_paths(self, name):
        return list(self.folder_names_and_paths[name][0])

    def get_output_directory(self):
        return "/comfy/output"


class FakeBar:
    updates = []

    def __init__(self, total):
        self.total = total

    def update_absolute(self, value, total=None, preview=None):
        FakeBar.updates.append((value, total, preview))


class Interrupt(Exception):
    pass


@pytest.fixture
def fake_comfy(comfy_shim, monkeypatch):
    state = {"interrupted": False}

    def throw():
        if state["interrupted"]:
            state["interrupted"] = False
            raise Interrupt()

    api = SimpleNamespace(
        folder_paths=FakeFolderPaths(["/data/my_models/omnihuman"]),
        utils=SimpleNamespace(ProgressBar=FakeBar),
        args=SimpleNamespace(preview_method="auto", preview_size=384),
        LatentPreviewMethod=SimpleNamespace(NoPreviews="none"),
        mm=SimpleNamespace(processing_interrupted=lambda: state["interrupted"],
                           throw_exception_if_processing_interrupted=throw,
                           interrupt_current_processing=lambda value=True: state.update(interrupted=value)),
    )
    monkeypatch.setattr(comfy_shim, "_api", api)
    FakeBar.updates = []
    return api


def test_the_model_folder_is_added_to_never_replaced(comfy_shim, fake_comfy):
    comfy_shim.register_model_folder()
    comfy_shim.register_model_folder()  # a second load of the pack changes nothing
    assert comfy_shim.model_paths() == [Path("/data/my_models/omnihuman"), Path("/comfy/models/omnihuman"),
                                        comfy_shim.PACK_DIR / "models"]
    assert comfy_shim.output_dir() == Path("/comfy/output")


def test_progress_goes_to_comfyuis_bar_with_a_jpeg_preview(comfy_shim, fake_comfy):
    from PIL import Image

    assert comfy_shim.previews_enabled()
    bar = comfy_shim.Progress(4)
    img = Image.new("RGB", (8, 8))
    bar.update(1)
    bar.update(2, 6, img)
    assert FakeBar.updates == [(1, 4, None), (2, 6, ("JPEG", img, 384))]
    fake_comfy.args.preview_method = "none"
    assert not comfy_shim.previews_enabled()


def test_cancel_becomes_comfyuis_interrupt(comfy_shim, fake_comfy):
    assert not comfy_shim.interrupted()
    comfy_shim.request_interrupt()
    assert comfy_shim.interrupted()
    with pytest.raises(Interrupt):  # the queue shows "interrupted", not an error
        comfy_shim.raise_interrupted(Cancelled("cancelled at segment 2 of 3"))
    assert not comfy_shim.interrupted()
    with pytest.raises(Cancelled):  # a Cancelled without a Cancel press is re-raised as it is
        comfy_shim.raise_interrupted(Cancelled("other"))


def test_outside_comfyui_models_stay_plain(comfy_shim):
    managed = comfy_shim.Managed(torch.nn.Linear(2, 2), load_device="cpu", offload_device="cpu",
                                 dtype=torch.float32, full_load=True)
    managed.load()
    assert managed.patcher is None and comfy_shim.operations(torch.float16, torch.float32, "cpu") is torch.nn
    assert comfy_shim.model_dtypes("auto", torch.device("cpu"), 10) == (torch.float32, torch.float32)
    assert comfy_shim.model_dtypes("bf16", torch.device("cpu"), 10) == (torch.bfloat16, torch.bfloat16)
