"""Shared test setup for the whole suite."""

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(autouse=True)
def single_thread():
    """Run torch on one thread: these tensors are tiny, so thread hand-off costs more than the work,
    and on a shared CI machine spinning intra-op threads slow everything down by 5x or more."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def script():
    """`script("action_leak")`: a module of scripts/ (not a package), loaded from its file."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
