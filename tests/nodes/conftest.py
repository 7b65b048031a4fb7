"""Fixtures of the node tests: the pack (imported as ComfyUI imports it, without ComfyUI), tiny random
model files in a temporary 'omnihuman' model folder, a plain host (no Cancel, work folders in tmp), and
a fake LLM endpoint."""

from __future__ import annotations

import sys

import pytest
import torch

from .helpers import PACK_NAME, RENDER_DEFAULTS, FakeLLM, load_pack


@pytest.fixture(scope="session")
def pack():
    return load_pack()


@pytest.fixture(scope="session")
def nodes(pack):
    return pack.nodes


@pytest.fixture(scope="session")
def comfy_shim(pack):
    return sys.modules[f"{PACK_NAME}.nodes._comfy"]


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory):
    """A model folder with tiny demo-named files: demo/{mmdit,vae,text_encoder,upscaler}.safetensors."""
    from omnihuman_core.model import MMDiT, MMDiTConfig
    from omnihuman_core.text import BuiltinTextEncoder
    from omnihuman_core.upscale import Upscaler, save_upscaler
    from omnihuman_core.vae import CausalVideoVAE
    from omnihuman_core.weights import save_safetensors

    root = tmp_path_factory.mktemp("omnihuman_models")
    demo = root / "demo"
    torch.manual_seed(0)
    cfg = MMDiTConfig.preset("tiny", audio_dim=80)
    save_safetensors(demo / "mmdit.safetensors", MMDiT(cfg).state_dict(), "mmdit", cfg.to_dict(),
                     {"render_defaults": RENDER_DEFAULTS})
    vae = CausalVideoVAE.from_config("tiny")
    save_safetensors(demo / "vae.safetensors", vae.state_dict(), "vae", vae.config.to_dict())
    text = BuiltinTextEncoder.from_config("tiny")
    save_safetensors(demo / "text_encoder.safetensors", text.state_dict(), "text_encoder", text.config.to_dict())
    save_upscaler(demo / "upscaler.safetensors", Upscaler.from_config("sr-tiny"))
    return root


@pytest.fixture(autouse=True)
def plain_host(comfy_shim, model_folder, tmp_path, monkeypatch):
    """Outside ComfyUI: model lookups in the tiny folder, work folders in this test's tmp dir, no Cancel."""
    monkeypatch.setattr(comfy_shim, "FALLBACK_MODEL_PATHS", [model_folder])
    monkeypatch.setattr(comfy_shim, "FALLBACK_OUTPUT_DIR", tmp_path / "output")
    monkeypatch.setattr(comfy_shim, "FALLBACK_PROGRESS_HOOK", None)
    monkeypatch.setenv("OMNIHUMAN_CACHE_DIR", str(tmp_path / "cache"))
    comfy_shim._interrupt.clear()
    yield
    comfy_shim._interrupt.clear()


@pytest.fixture
def model(nodes):
    return nodes.OmniHumanModelLoader().load("demo/mmdit.safetensors", "demo/vae.safetensors",
                                             "demo/text_encoder.safetensors", "auto")[0]


@pytest.fixture
def fake_llm():
    server = FakeLLM()
    yield server
    server.close()
