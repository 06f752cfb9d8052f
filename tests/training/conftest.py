"""Fixtures for the training tests: one small synthetic benchmark per session and one torch
thread per test (two test workers share two cores in CI; more threads
only make the tiny models slower)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from vidpan.data.synthetic import SyntheticDataset, generate


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return generate(tmp_path_factory.mktemp("synth") / "bench", videos=6, frames=8, size=(64, 96), seed=0)
