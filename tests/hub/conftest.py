"""Fixtures of the hub tests: a loopback fake Hugging Face Hub (see hubtools.py), its environment, and
the DVIS++ parity fixture as a user would have it (frames, a preset YAML, a DVIS++-format ``.pth``)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hubtools import FakeHub, make_env, start_server
from PIL import Image
from safetensors.torch import load_file

from vidpan.config import Config, save_yaml
from vidpan.models.reference_config import inference_config_from_reference, model_config_from_reference


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


@pytest.fixture(scope="session")
def fixture_files(dvis_fixture: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Frames as PNGs, the fixture's architecture as a preset YAML, its weights as a DVIS++ .pth."""
    root = tmp_path_factory.mktemp("fixture")
    meta = json.loads((dvis_fixture / "meta.json").read_text())
    config = Config(
        name="dvis_plus_fixture",
        model=model_config_from_reference(
            meta["config"], num_things=int(meta["metadata"]["n_thing_classes"])
        ),
        inference=inference_config_from_reference(meta["config"]),
    )
    preset = root / "fixture_preset.yaml"
    save_yaml(config, preset)
    video = load_file(str(dvis_fixture / "inputs.safetensors"))["video_tchw_uint8"]
    frames = root / "clip"
    frames.mkdir()
    for t, frame in enumerate(video.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(frame).save(frames / f"{t:05d}.png")
    buffer = io.BytesIO()
    torch.save({"model": load_file(str(dvis_fixture / "weights.safetensors")), "iteration": 0}, buffer)
    outputs = load_file(str(dvis_fixture / "outputs.safetensors"))
    return {"preset": preset, "frames": frames, "pth": buffer.getvalue(), "outputs": outputs}
