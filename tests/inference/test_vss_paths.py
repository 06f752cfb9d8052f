"""The two VSS paths of a VPS model — DVIS++'s soft semantic inference and the seed paper's
panoptic segments merged by class — on a case where they differ, both scored by `vidpan eval vss`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidpan.data.synthetic import SyntheticDataset, generate
from vidpan.demo import SHIPPED_WEIGHTS
from vidpan.evaluation import evaluate_vss
from vidpan.inference.output import OutputDirectory
from vidpan.inference.predictor import VideoPredictor
from vidpan.inference.vss_merge import (
    MergedSemanticPNGWriter,
    merge_panoptic_by_class,
    predict_vss_from_panoptic,
)
from vidpan.inference.writers import SemanticPNGWriter
from vidpan.structures import PanopticFrame, SemanticFrame


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return generate(
        tmp_path_factory.mktemp("vss"), videos=1, frames=6, size=(128, 224), seed=11, val_fraction=1.0
    )


def test_soft_and_merged_vss_differ_and_both_evaluate(synth: SyntheticDataset, tmp_path: Path) -> None:
    predictor = VideoPredictor.from_pretrained(SHIPPED_WEIGHTS)
    frames = synth.vipseg_root / "images" / synth.val_videos[0]
    vps = predictor.predict(frames, mode="online", task="vps", keep_frames=True)
    soft = predictor.predict(frames, mode="online", task="vss", keep_frames=True)
    merged = predict_vss_from_panoptic(predictor, frames, mode="online")
    assert merged.task == "vss" and len(merged.frames) == len(soft.frames) == 6
    differ = 0
    for p, s, m in zip(vps.frames, soft.frames, merged.frames, strict=True):
        assert isinstance(p, PanopticFrame) and isinstance(s, SemanticFrame) and isinstance(m, SemanticFrame)
        np.testing.assert_array_equal(
            m.classes, merge_panoptic_by_class(p).classes
        )  # the merged path's definition
        # every labelled pixel keeps its segment's class
        lut = np.zeros(int(p.segment_ids.max()) + 1, np.int64)
        for seg in p.segments:
            lut[seg.id] = seg.category_id
        labelled = p.segment_ids > 0
        np.testing.assert_array_equal(m.classes[labelled], lut[p.segment_ids[labelled]])
        differ += int((m.classes != s.classes).sum())
    assert differ > 0, "the two VSS paths gave identical labels: the test case does not separate them"

    scores = {}
    for name, writer_cls, task in (
        ("soft", SemanticPNGWriter, "vss"),
        ("merged", MergedSemanticPNGWriter, "vps"),
    ):
        out_dir = tmp_path / name
        with OutputDirectory(out_dir) as out:
            writer = writer_cls(out, labels=predictor.categories)
            predictor.predict(frames, mode="online", task=task, writers=[writer], keep_frames=False)
        scores[name] = evaluate_vss(synth.vspw_root, out_dir / "sem_pred").to_json()
        assert 0.0 < scores[name]["mIoU"] <= 1.0
    assert scores["soft"] != scores["merged"]
