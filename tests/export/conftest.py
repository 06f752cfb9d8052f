"""Shared fixtures of the export tests: the DVIS++ parity-fixture model and the shipped model,
each exported once per session (segmenter + tracker step, ONNX and torch.export)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vidpan.config import Config
from vidpan.data.synthetic import DIFFICULTIES, render_video, sample_scene
from vidpan.demo import SHIPPED_WEIGHTS
from vidpan.export.exporter import export_part, trace
from vidpan.export.manifest import sha256_file
from vidpan.models.build import DVIS, build_dvis, load_pretrained
from vidpan.models.checkpoint import convert_dvis_plus, load_state_dict_strict, read_checkpoint
from vidpan.models.reference_config import inference_config_from_reference, model_config_from_reference

pytest.importorskip("onnxruntime")


@dataclass
class Exported:
    """One model, a video for it, and a directory with its four exported files."""

    model: DVIS
    config: Config
    video: torch.Tensor  # [T, 3, H, W] uint8 at the model input size (no resize needed)
    directory: Path
    weights: Path
    windows: list[tuple[int, int]]  # frame ranges of the predictor's windows


def _export_all(
    model: DVIS, config: Config, directory: Path, size: tuple[int, int], frames: int, weights: Path
) -> None:
    digest = sha256_file(weights)
    for part in ("segmenter", "tracker-step"):
        program = trace(model, config, part, size, frames)  # type: ignore[arg-type]
        for fmt, suffix in (("onnx", ".onnx"), ("torch-export", ".pt2")):
            export_part(model, config, part=part, size=size, fmt=fmt, out=directory / f"{part}{suffix}",  # type: ignore[arg-type]
                        frames=frames, weights_sha256=digest, program=program)  # fmt: skip


def _windows(num_frames: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, num_frames)) for s in range(0, num_frames, size)]


@pytest.fixture(scope="session")
def fixture_export(dvis_fixture: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """The DVIS++ fixture model (96x128 frames, windows of 3), segmenter exported with T = 2 so
    that the engine's last-chunk padding is exercised (windows 3, 3, 1)."""
    meta = json.loads((dvis_fixture / "meta.json").read_text())
    config = Config(
        name="dvis_plus_fixture",
        model=model_config_from_reference(
            meta["config"], num_things=int(meta["metadata"]["n_thing_classes"])
        ),
        inference=inference_config_from_reference(meta["config"]),
    )
    model = build_dvis(config.model)
    load_state_dict_strict(model, convert_dvis_plus(read_checkpoint(dvis_fixture / "weights.safetensors")))
    model.eval()
    video = load_file(str(dvis_fixture / "inputs.safetensors"))["video_tchw_uint8"]
    directory = tmp_path_factory.mktemp("fixture_export")
    size = (int(video.shape[2]), int(video.shape[3]))
    weights = dvis_fixture / "weights.safetensors"
    _export_all(model, config, directory, size, 2, weights)
    return Exported(
        model, config, video, directory, weights, _windows(video.shape[0], config.inference.window_size)
    )


def synthetic_video(frames: int = 8, height: int = 128, width: int = 224, seed: int = 5) -> np.ndarray:
    """uint8 [T, H, W, 3] synthetic video (the shipped model's domain and size)."""
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, video_id="v", frames=frames, height=height, width=width,
                         difficulty=DIFFICULTIES["medium"])  # fmt: skip
    return np.stack([f.image for f in render_video(scene, rng)])


@pytest.fixture(scope="session")
def shipped_export(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """The shipped model at its native 128x224 (short side 128: no resize), segmenter T = 1."""
    config, model = load_pretrained(SHIPPED_WEIGHTS)
    model.eval()
    video = torch.from_numpy(synthetic_video()).permute(0, 3, 1, 2).contiguous()
    directory = tmp_path_factory.mktemp("shipped_export")
    _export_all(model, config, directory, (128, 224), 1, SHIPPED_WEIGHTS)
    return Exported(
        model,
        config,
        video,
        directory,
        SHIPPED_WEIGHTS,
        _windows(video.shape[0], config.inference.window_size),
    )


@pytest.fixture(params=["fixture", "shipped"])
def exported(request: pytest.FixtureRequest) -> Exported:
    return request.getfixturevalue(f"{request.param}_export")
