"""Batch-test fixtures: 4 tiny synthetic .mp4 videos, the shipped model, and a serial reference run.

Every run uses one intra-op thread (in-process runs ``torch.set_num_threads(1)``, subprocesses
``OMP_NUM_THREADS=1``, Ray workers and torchrun ranks set it themselves), so outputs can be
compared byte for byte across processes and engines.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_helpers import FAST, NAMES

from vidpan.cli.main import main


@pytest.fixture
def one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 4 synthetic videos, 6 frames of 64x96 each."""
    root = tmp_path_factory.mktemp("synth")
    args = ["synth", "--out", str(root), "--videos", "4", "--frames", "6", "--size", "64x96", "--mp4"]
    assert main(args) == 0
    folder = root / "videos"
    assert sorted(p.stem for p in folder.glob("*.mp4")) == NAMES
    return folder


@pytest.fixture(scope="session")
def reference(videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The serial batch of the 4 videos (one thread), the outputs other engines must equal."""
    import torch

    out = tmp_path_factory.mktemp("reference") / "out"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["segment", "--video-list", str(videos), "--out", str(out), *FAST]) == 0
    finally:
        torch.set_num_threads(before)
    return out
