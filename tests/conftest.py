"""Shared test setup for the whole suite."""

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    """Run torch on one thread: these tensors are tiny, so thread hand-off costs more than the work,
    and on a shared CI machine spinning intra-op threads slow everything down by 5x or more."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
