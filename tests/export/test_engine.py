"""The exported engine inside the unchanged :class:`VideoPredictor`: panoptic ids identical to
the eager run over a whole video, both formats; bad exported directories are one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import Exported, synthetic_video
from vidpan.errors import InputError
from vidpan.export.engine import load_exported, with_exported
from vidpan.inference.predictor import VideoPredictor
from vidpan.structures import PanopticFrame


def _same_prediction(exported: Exported, fmt: str, mode: str, video: np.ndarray) -> None:
    segmenter, tracker = load_exported(exported.directory, fmt=fmt)  # type: ignore[arg-type]
    eager = VideoPredictor(exported.model, exported.config)(video, mode=mode)
    ours = VideoPredictor(with_exported(exported.model, segmenter, tracker), exported.config)(
        video, mode=mode
    )
    assert len(ours.frames) == len(eager.frames) == video.shape[0]
    for a, b in zip(ours.frames, eager.frames, strict=True):
        assert isinstance(a, PanopticFrame) and isinstance(b, PanopticFrame)
        assert np.array_equal(a.segment_ids, b.segment_ids), f"frame {a.index}: panoptic ids differ"
        assert [(s.id, s.category_id, s.track) for s in a.segments] == [
            (s.id, s.category_id, s.track) for s in b.segments
        ]
    assert [s.id for s in ours.segments] == [s.id for s in eager.segments]
    assert ours.segments, "the comparison is vacuous without segments"


@pytest.mark.parametrize("fmt", ["onnx", "torch-export"])
def test_fixture_video_panoptic_ids_identical(fixture_export: Exported, fmt: str) -> None:
    video = fixture_export.video.permute(0, 2, 3, 1).numpy()  # [T, H, W, 3]
    _same_prediction(fixture_export, fmt, "online", video)


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        ("onnx", "online"),
        pytest.param("onnx", "offline", marks=pytest.mark.slow),
        pytest.param("torch-export", "online", marks=pytest.mark.slow),
    ],
)
def test_shipped_model_panoptic_ids_identical(shipped_export: Exported, fmt: str, mode: str) -> None:
    _same_prediction(shipped_export, fmt, mode, synthetic_video(frames=10, seed=7))


def test_engine_errors(shipped_export: Exported, fixture_export: Exported, tmp_path: Path) -> None:
    segmenter, tracker = load_exported(shipped_export.directory)
    predictor = VideoPredictor(with_exported(shipped_export.model, segmenter, tracker), shipped_export.config)
    with pytest.raises(InputError, match="exported for 128x224: export again with --size 128x256"):
        predictor(synthetic_video(frames=2, width=256), mode="online")
    with pytest.raises(InputError, match="exported from other weights"):
        load_exported(shipped_export.directory, weights=fixture_export.weights)
    with pytest.raises(InputError, match="no onnx tracker-step"):
        partial = tmp_path / "partial"
        partial.mkdir()
        for name in ("segmenter.onnx", "segmenter.onnx.json"):
            shutil.copy(shipped_export.directory / name, partial / name)
        load_exported(partial)
    with pytest.raises(InputError, match="not a vidpan export manifest"):
        (partial / "tracker-step.onnx.json").write_text(
            json.dumps({"part": "tracker-step", "manifest_version": 1})
        )
        load_exported(partial)
    with pytest.raises(InputError, match="not a directory"):
        load_exported(tmp_path / "missing")
