"""FrameResult.to_hf() / to_supervision(): the layout transformers returns, what supervision's
annotators accept, and ids stable over a video segmented by the shipped model."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from vidpan.data.synthetic import generate
from vidpan.demo import SHIPPED_WEIGHTS
from vidpan.errors import InputError
from vidpan.inference.predictor import VideoPrediction, VideoPredictor
from vidpan.structures import InstanceFrame, PanopticFrame, Segment, SemanticFrame

sv = pytest.importorskip("supervision")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic video the shipped model never saw (6 frames)."""
    data = generate(tmp_path_factory.mktemp("synth") / "d", videos=1, frames=6, size=(96, 160),
                    seed=4321, val_fraction=1.0, mp4=True)  # fmt: skip
    assert data.mp4_dir is not None
    return next(data.mp4_dir.iterdir())


@pytest.fixture(scope="module")
def prediction(video: Path) -> VideoPrediction:
    """The shipped model on the video, offline mode."""
    predictor = VideoPredictor.from_pretrained(SHIPPED_WEIGHTS)
    return predictor.predict(video, mode="offline", task="vps", keep_frames=True)


def _hf_outputs() -> tuple[types.SimpleNamespace, int]:
    """Raw outputs that transformers' post-processing turns into 3 segments (three quadrants, the fourth void),
    for 2 frames: class logits [T, Q, K+1], mask logits [T, Q, 8, 8]."""
    t, q, k = 2, 4, 3
    classes = torch.full((t, q, k + 1), -10.0)
    masks = torch.full((t, q, 8, 8), -10.0)
    for i, (label, (ys, xs)) in enumerate(
        [
            (0, (slice(0, 4), slice(0, 4))),
            (1, (slice(0, 4), slice(4, 8))),
            (2, (slice(4, 8), slice(0, 4))),
        ]  # lower right: void
    ):
        classes[:, i, label] = 10.0
        masks[:, i, ys, xs] = 10.0
    classes[:, 3, k] = 10.0  # no-object query
    return types.SimpleNamespace(class_queries_logits=classes, masks_queries_logits=masks), k


def test_to_hf_has_the_layout_of_transformers_panoptic_post_processing(prediction: VideoPrediction) -> None:
    pytest.importorskip("transformers", reason="transformers is not installed (vidpan[dev])")
    from transformers import Mask2FormerImageProcessorPil
    from transformers.models.videomt.video_processing_videomt import VideomtVideoProcessor

    outputs, _ = _hf_outputs()
    video = VideomtVideoProcessor().post_process_panoptic_segmentation(outputs, target_sizes=[(16, 16)] * 2)
    image = Mask2FormerImageProcessorPil().post_process_panoptic_segmentation(
        outputs, target_sizes=[(16, 16)] * 2, label_ids_to_fuse={2}
    )
    assert video[0]["segments_info"] and image[0]["segments_info"]
    ours = prediction.frames[0].to_hf()
    assert set(ours) == set(video[0]) == set(image[0]) == {"segmentation", "segments_info"}
    seg = ours["segmentation"]
    # transformers' video panoptic post-processing: torch.long [H, W], -1 = void.
    assert isinstance(seg, torch.Tensor)
    assert seg.dtype == video[0]["segmentation"].dtype == torch.long
    assert seg.shape == (prediction.height, prediction.width)
    assert int(video[0]["segmentation"].min()) == -1  # their void (ids start at 0 there)
    keys = {"id", "label_id", "score"} | set(image[0]["segments_info"][0])  # + Mask2Former's was_fused
    assert keys == set(video[0]["segments_info"][0]) | {"was_fused"}
    for info in ours["segments_info"]:
        assert set(info) == keys | {"track_id", "isthing"}
        assert isinstance(info["id"], int) and isinstance(info["label_id"], int)
        assert isinstance(info["score"], float) and isinstance(info["isthing"], bool)
        assert info["was_fused"] == (not info["isthing"])


@pytest.mark.parametrize("mode", ["offline", "online-stream"])
def test_to_hf_ids_are_stable_over_the_video(mode: str, prediction: VideoPrediction, video: Path) -> None:
    if mode == "online-stream":  # each window decided as it comes: ids are per tracker slot
        predictor = VideoPredictor.from_pretrained(SHIPPED_WEIGHTS)
        prediction = predictor.predict(
            video, mode="online", task="vps", postprocess="stream", keep_frames=True
        )
    by_id = {s.id: s for s in prediction.segments}
    assert len(by_id) >= 3
    seen: set[int] = set()
    for frame in prediction.frames:
        assert isinstance(frame, PanopticFrame)
        hf = frame.to_hf()
        seg = hf["segmentation"].numpy()
        np.testing.assert_array_equal(seg, np.where(frame.segment_ids == 0, -1, frame.segment_ids))
        infos = {i["id"]: i for i in hf["segments_info"]}
        assert set(np.unique(seg)) - {-1} == set(infos)
        for sid, info in infos.items():  # same id -> same track, class, thing/stuff on every frame
            assert info["track_id"] == sid
            assert info["label_id"] == by_id[sid].category_id
            assert info["isthing"] == by_id[sid].isthing
        seen |= set(infos)
    assert seen == set(by_id)


def test_to_supervision_detections_are_tracked_and_drawable(prediction: VideoPrediction) -> None:
    names = [f"class{i}" for i in range(16)]
    tracker_ids: set[int] = set()
    for frame in prediction.frames:
        assert isinstance(frame, PanopticFrame)
        det = frame.to_supervision(class_names=names)
        assert isinstance(det, sv.Detections)
        n = len(det)
        assert n == len(frame.segments)
        assert det.mask is not None and det.mask.shape == (n, prediction.height, prediction.width)
        assert det.mask.dtype == bool and det.tracker_id is not None and det.confidence is not None
        for row, sid in enumerate(det.tracker_id):
            np.testing.assert_array_equal(det.mask[row], frame.segment_ids == sid)
            ys, xs = np.nonzero(det.mask[row])
            np.testing.assert_array_equal(det.xyxy[row], [xs.min(), ys.min(), xs.max(), ys.max()])
        tracker_ids |= {int(t) for t in det.tracker_id}
        scene = np.zeros((prediction.height, prediction.width, 3), dtype=np.uint8)
        drawn = sv.MaskAnnotator().annotate(scene.copy(), det)
        drawn = sv.LabelAnnotator().annotate(drawn, det, labels=[str(c) for c in det.data["class_name"]])
        assert drawn.shape == scene.shape and drawn.any()
    assert tracker_ids == {s.id for s in prediction.segments}


def _segment(sid: int, cls: int, score: float, isthing: bool = True) -> Segment:
    return Segment(id=sid, category_id=cls, isthing=isthing, score=score, track=sid - 1)


def test_instance_and_semantic_frames() -> None:
    masks = np.zeros((3, 4, 5), dtype=bool)
    masks[0, :2] = True
    masks[1, 1:3] = True  # overlaps row 0 on line 1; higher score wins there
    instances = [_segment(1, 0, 0.6), _segment(2, 1, 0.9), _segment(3, 2, 0.7)]  # id 3 absent here
    frame = InstanceFrame(index=0, masks=masks, instances=instances)
    hf = frame.to_hf()
    assert hf["segmentation"].tolist()[:3] == [[1] * 5, [2] * 5, [2] * 5]
    assert hf["segmentation"].tolist()[3] == [-1] * 5
    assert [i["id"] for i in hf["segments_info"]] == [1, 2]
    det = frame.to_supervision()
    assert list(det.tracker_id) == [1, 2] and det.mask.sum() == 20  # overlapping masks kept whole
    classes = np.array([[0, 0, 3], [3, 3, 3]], dtype=np.int32)
    semantic = SemanticFrame(index=0, classes=classes)
    out = semantic.to_hf()
    assert isinstance(out, torch.Tensor) and out.dtype == torch.long and out.tolist() == classes.tolist()
    det = semantic.to_supervision()
    assert list(det.class_id) == [0, 3] and list(det.tracker_id) == [1, 4]


def test_empty_frame_and_missing_supervision(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = PanopticFrame(index=0, segment_ids=np.zeros((4, 6), dtype=np.int32), segments=[])
    hf = frame.to_hf()
    assert hf["segments_info"] == [] and bool((hf["segmentation"] == -1).all())
    det = frame.to_supervision()
    assert len(det) == 0 and det.mask.shape == (0, 4, 6)
    monkeypatch.setitem(sys.modules, "supervision", None)  # as if not installed
    with pytest.raises(InputError, match=r"pip install vidpan\[supervision\]"):
        frame.to_supervision()
