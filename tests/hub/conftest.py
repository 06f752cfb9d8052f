"""Fixtures of the hub tests: a loopback fake Hugging Face Hub (see hubtools.py) and its environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hubtools import FakeHub, make_env, start_server


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub()
    server, thread = start_server(hub)
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def hub_env(fake_hub: FakeHub, tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess using the fake hub, with a private, empty HF_HOME."""
    return make_env(fake_hub, tmp_path / "hf_home")
