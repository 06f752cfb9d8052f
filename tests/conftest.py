"""Shared test fixtures: paths to ../shared (fixtures the official code produced)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VIDPAN_SHARED", REPO_ROOT.parent / "shared"))


def dvis_fixture_dir() -> Path:
    """The DVIS++ parity fixture directory (env ``VIDPAN_DVIS_FIXTURE`` overrides the default)."""
    return Path(os.environ.get("VIDPAN_DVIS_FIXTURE", SHARED / "fixtures" / "dvis_plus_tiny"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared not found at {SHARED}; the tests need it (CI clones it beside the repo)")
    return SHARED


@pytest.fixture(scope="session")
def dvis_fixture() -> Path:
    path = dvis_fixture_dir()
    if not (path / "meta.json").is_file():
        pytest.fail(f"DVIS++ fixture not found at {path} (set VIDPAN_DVIS_FIXTURE)")
    return path
