"""Fixtures of the data tests: tiny datasets written in the official layouts (see ``clip_data.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from clip_data import build_tiny_coco, build_tiny_vipseg, build_tiny_vspw, oracle_roots_builder


@pytest.fixture
def tiny_vipseg(tmp_path: Path) -> Path:
    """A VIPSeg root with two videos (6 and 3 frames, 40x60), split ``train``."""
    return build_tiny_vipseg(tmp_path)


@pytest.fixture
def tiny_vspw(tmp_path: Path) -> Path:
    """A VSPW root with two videos (5 and 2 frames, 30x40), split ``train``."""
    return build_tiny_vspw(tmp_path)


@pytest.fixture
def tiny_coco(tmp_path: Path) -> Path:
    """A COCO panoptic folder with two images."""
    return build_tiny_coco(tmp_path)


@pytest.fixture
def oracle_roots(tmp_path: Path, shared_dir: Path) -> Callable[[], tuple[Path, Path]]:
    """Builds the metrics oracle's VIPSeg / VSPW roots with dummy images in tmp."""
    return oracle_roots_builder(tmp_path, shared_dir)
