"""Streaming writers: VIPSeg submission, VSPW PNGs, overlay mp4, JSON lines; atomic output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidpan.data.categories import CategoryMapping
from vidpan.data.formats.rgb_id import color_to_id, read_id_png
from vidpan.data.formats.vipseg import Category, read_panoptic_video_json
from vidpan.data.formats.vspw import read_label_png
from vidpan.errors import InputError
from vidpan.inference.output import OutputDirectory
from vidpan.inference.regions import label_point, region_stats
from vidpan.inference.video_io import open_video
from vidpan.inference.visualize import id_color
from vidpan.inference.writers import (
    FrameJSONWriter,
    OverlayVideoWriter,
    SemanticPNGWriter,
    VIPSegSubmissionWriter,
)
from vidpan.structures import PanopticFrame, Segment, SemanticFrame

# Dataset categories with VIPSeg's palette clash: stuff "slide" and thing "car" share a colour.
CATEGORIES = [
    Category(0, "wall", False, (120, 120, 120)),
    Category(1, "person", True, (220, 20, 60)),
    Category(2, "slide", False, (140, 140, 140)),
    Category(3, "car", True, (140, 140, 140)),
    Category(4, "sky", False, (70, 130, 180)),
]
LABELS = CategoryMapping.from_categories(CATEGORIES)  # model: 0 person, 1 car, 2 wall, 3 slide, 4 sky
H, W, T = 24, 33, 6  # odd width: the overlay pads it


def model_class(name: str) -> int:
    return [c.name for c in LABELS.categories()].index(name)


def make_frames() -> list[PanopticFrame]:
    """Stuff: wall (id 10) top, sky (id 11) bottom, slide (id 12) right strip; things: person
    (id 20) moving right, two cars (ids 21, 22). Car 22 is listed but absent in frame 3."""
    frames = []
    for t in range(T):
        ids = np.zeros((H, W), np.int32)
        ids[:12] = 10
        ids[12:] = 11
        ids[:, 28:] = 12
        ids[0, 0] = 0  # a void pixel
        ids[4:10, 2 + 2 * t : 6 + 2 * t] = 20
        ids[14:20, 2:8] = 21
        if t != 3:
            ids[14:18, 16:22] = 22
        segments = [
            Segment(10, model_class("wall"), False, 0.9, 0),
            Segment(11, model_class("sky"), False, 0.8, 1),
            Segment(12, model_class("slide"), False, 0.7, 2),
            Segment(20, model_class("person"), True, 0.95, 3),
            Segment(21, model_class("car"), True, 0.85, 4),
            Segment(22, model_class("car"), True, 0.75, 5),
        ]
        frames.append(PanopticFrame(t, ids, segments))
    return frames


def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(T)]


def test_submission_round_trip(tmp_path: Path) -> None:
    frames = make_frames()
    with OutputDirectory(tmp_path / "out") as out:
        writer = VIPSegSubmissionWriter(out, labels=LABELS)
        writer.begin_video("vid_a")
        for f in frames:
            writer.write(f)
        writer.begin_video("vid_b", frame_names=["x/f5.jpg", "x/f9.jpg"])  # ends vid_a
        writer.write(PanopticFrame(1, frames[0].segment_ids, frames[0].segments))
    root = tmp_path / "out"
    pred = read_panoptic_video_json(root / "pred.json", require_videos=False)
    videos = pred.video_map()
    assert sorted(videos) == ["vid_a", "vid_b"]
    assert [f.file_name for f in videos["vid_a"].frames] == [f"{t:08d}.png" for t in range(T)]
    assert [f.file_name for f in videos["vid_b"].frames] == ["f9.png"]  # source names, by index

    track_to_out: dict[int, int] = {}
    for f, info, segs in zip(frames, videos["vid_a"].frames, videos["vid_a"].segments, strict=True):
        png = read_id_png(root / "pan_pred" / "vid_a" / info.file_name).astype(np.int64)
        present = set(np.unique(png).tolist()) - {0}
        assert {s.id for s in segs} == present  # exactly the ids in the PNG, each once
        assert len(segs) == len(present)
        assert (png == 0).sum() == 1  # void stays void
        for s in segs:
            mask = png == s.id
            ys, xs = np.nonzero(mask)
            assert s.area == mask.sum()
            assert s.bbox == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        # The same input segment is the same output id in every frame (stable per track).
        for seg_in in np.unique(f.segment_ids).tolist():
            if seg_in == 0:
                continue
            out_ids = np.unique(png[f.segment_ids == seg_in])
            assert len(out_ids) == 1
            assert track_to_out.setdefault(seg_in, int(out_ids[0])) == int(out_ids[0])
        cats = {s.id: s.category_id for s in segs}
        assert cats[track_to_out[20]] == 1 and cats[track_to_out[10]] == 0  # dataset ids
    assert track_to_out[22] not in {s.id for s in videos["vid_a"].segments[3]}  # absent -> unlisted
    # Stuff = the category colour; things distinct from each other, from stuff and from 0.
    assert track_to_out[10] == color_to_id((120, 120, 120))
    assert track_to_out[12] == color_to_id((140, 140, 140))
    assert track_to_out[20] == color_to_id((220, 20, 60))  # first person: the category colour
    assert len(set(track_to_out.values())) == len(track_to_out)
    assert 0 not in track_to_out.values()


def test_submission_merges_stuff_of_one_class_and_rejects_unlisted_ids(tmp_path: Path) -> None:
    ids = np.zeros((4, 6), np.int32)
    ids[:, :3], ids[:, 3:] = 1, 2
    two_walls = [
        Segment(1, model_class("wall"), False, 0.9, 0),
        Segment(2, model_class("wall"), False, 0.8, 1),
    ]
    with OutputDirectory(tmp_path / "out") as out:
        writer = VIPSegSubmissionWriter(out, labels=LABELS)
        writer.begin_video("v")
        writer.write(PanopticFrame(0, ids, two_walls))
        with pytest.raises(ValueError, match="in the map but not listed"):
            writer.write(PanopticFrame(1, ids, two_walls[:1]))
        with pytest.raises(ValueError, match="frames must come in order"):
            writer.write(PanopticFrame(0, ids, two_walls))
    pred = json.loads((tmp_path / "out" / "pred.json").read_text())
    (info,) = pred["annotations"][0]["annotations"][0]["segments_info"]
    assert info == {
        "id": color_to_id((120, 120, 120)),
        "category_id": 0,
        "iscrowd": 0,
        "area": 24,
        "bbox": [0, 0, 6, 4],
    }


def test_clashing_stuff_colours_are_refused(tmp_path: Path) -> None:
    cats = [Category(0, "a", False, (1, 2, 3)), Category(1, "b", False, (1, 2, 3))]
    with OutputDirectory(tmp_path / "out") as out, pytest.raises(InputError, match="share the colour"):
        VIPSegSubmissionWriter(out, labels=CategoryMapping.identity(cats))


def test_no_partial_output_after_an_exception(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("earlier complete result")
    frames = make_frames()
    with pytest.raises(RuntimeError, match="boom"), OutputDirectory(target) as out:
        writers = [
            VIPSegSubmissionWriter(out, labels=LABELS),
            OverlayVideoWriter(out, labels=LABELS),
            FrameJSONWriter(out, labels=LABELS),
        ]
        for w in writers:
            w.begin_video("v")
        for f in frames[:3]:
            for w in writers:
                w.write(f, image=images()[f.index])
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in target.iterdir()] == ["old.txt"]  # untouched, no .partial folder left
    with pytest.raises(ValueError, match="boom"), OutputDirectory(tmp_path / "fresh"):
        raise ValueError("boom")
    assert not (tmp_path / "fresh").exists()


def test_semantic_pngs(tmp_path: Path) -> None:
    classes = np.full((H, W), model_class("sky"), np.int32)
    classes[:5] = model_class("person")
    classes[5, :4] = -1  # void
    with OutputDirectory(tmp_path / "out") as out:
        writer = SemanticPNGWriter(out, labels=LABELS)
        writer.begin_video("v", frame_names=["img_000.jpg", "img_001.jpg"])
        writer.write(SemanticFrame(0, classes))
        f = make_frames()[0]
        writer.write(PanopticFrame(1, f.segment_ids, f.segments))  # painted with its classes
    sem = read_label_png(tmp_path / "out" / "sem_pred" / "v" / "img_000.png")
    expected = np.full((H, W), 4, np.uint8)  # sky = dataset 4
    expected[:5] = 1  # person = dataset 1
    expected[5, :4] = 255
    assert np.array_equal(sem, expected)
    pan = read_label_png(tmp_path / "out" / "sem_pred" / "v" / "img_001.png")
    assert pan[0, 0] == 255 and pan[5, 3] == 1 and pan[15, 3] == 3 and pan[1, 30] == 2 and pan[20, 10] == 4
    assert np.array_equal(pan == 0, f.segment_ids == 10)


def test_overlay_video(tmp_path: Path) -> None:
    frames, imgs = make_frames(), images()
    with OutputDirectory(tmp_path / "out") as out:
        writer = OverlayVideoWriter(out, labels=LABELS, legend=True)
        writer.begin_video("v", fps=12.5)
        for f in frames:
            writer.write(f, image=imgs[f.index])
        writer.begin_video("sem")
        writer.write(SemanticFrame(0, np.where(frames[0].segment_ids > 15, 0, 4)), image=imgs[0])
    src = open_video(tmp_path / "out" / "overlay" / "v.mp4")
    assert (src.height, src.width) == (H, W + 1)  # odd width padded by one column
    assert src.fps == pytest.approx(12.5)
    decoded = list(src)
    assert len(decoded) == T
    sem = list(open_video(tmp_path / "out" / "overlay" / "sem.mp4"))
    assert len(sem) == 1 and sem[0].shape == (H, W + 1, 3)


def test_overlay_colours_and_labels() -> None:
    from vidpan.inference.visualize import draw_panoptic

    f = make_frames()[0]
    img = np.zeros((H, W, 3), np.uint8)
    plain = draw_panoptic(img, f, labels=LABELS, outlines=False, text=False)
    # Interior of the sky segment: exactly the blend of black and the segment's colour.
    expected = (np.array(id_color(11), np.uint16) * 128) >> 8
    assert np.array_equal(plain[22, 15], expected.astype(np.uint8))
    assert np.array_equal(plain[0, 0], [0, 0, 0])  # void untouched
    outlined = draw_panoptic(img, f, labels=LABELS, outlines=True, text=False)
    assert np.array_equal(outlined[11, 15], [255, 255, 255])  # wall/sky boundary
    labelled = draw_panoptic(img, f, labels=LABELS, outlines=False, text=True, min_label_area=1)
    assert (labelled != plain).any()


def test_frame_json_lines(tmp_path: Path) -> None:
    frames = make_frames()
    with OutputDirectory(tmp_path / "out") as out:
        writer = FrameJSONWriter(out, labels=LABELS)
        writer.begin_video("v")
        for f in frames:
            writer.write(f)
        writer.write(SemanticFrame(T, np.full((2, 3), model_class("wall"), np.int32)))
    lines = (tmp_path / "out" / "frames.jsonl").read_text().splitlines()
    assert len(lines) == T + 1
    rec = json.loads(lines[3])
    assert (rec["video"], rec["frame"], rec["name"], rec["height"], rec["width"]) == (
        "v",
        3,
        "00000003",
        H,
        W,
    )
    segs = {s["id"]: s for s in rec["segments"]}
    assert sorted(segs) == [10, 11, 12, 20, 21]  # 22 is absent from frame 3
    assert segs[20] == {
        "id": 20,
        "category_id": 1,
        "category_name": "person",
        "isthing": True,
        "score": 0.95,
        "area": 24,
        "bbox": [8, 4, 4, 6],
        "track": 3,
    }
    assert json.loads(lines[-1])["classes"] == [
        {"category_id": 0, "category_name": "wall", "area": 6, "bbox": [0, 0, 3, 2]}
    ]


def test_writers_are_closed_by_the_output_directory(tmp_path: Path) -> None:
    with OutputDirectory(tmp_path / "out") as out:
        writer = FrameJSONWriter(out)
        writer.begin_video("v")
        writer.write(make_frames()[0])
        assert list((tmp_path / "out").glob(".vidpan-partial-*"))  # work in progress is hidden
        assert not (tmp_path / "out" / "frames.jsonl").exists()
    with pytest.raises(RuntimeError, match="closed"):
        writer.write(make_frames()[1])
    assert (tmp_path / "out" / "frames.jsonl").read_text().count("\n") == 1
    with (
        pytest.raises(ValueError, match="cannot be used as a file name"),
        OutputDirectory(tmp_path / "o2") as out,
    ):
        FrameJSONWriter(out).begin_video("a/b")


def test_region_stats_and_label_point() -> None:
    ring = np.zeros((30, 30), np.int64)
    ring[5:25, 5:25] = 7
    ring[10:20, 10:20] = 0  # hole: the bbox centre is outside the region
    ring[0, 0] = 3
    stats = region_stats(ring)
    assert stats.ids.tolist() == [3, 7]
    assert stats.areas.tolist() == [1, 400 - 100]
    assert stats.bboxes.tolist() == [[0, 0, 1, 1], [5, 5, 20, 20]]
    x, y = label_point(stats.compact, 1, stats.bboxes[1])
    assert ring[y, x] == 7
    big = np.where(ring > 0, ring + (1 << 23), 0)  # 24-bit ids take the sparse path
    big_stats = region_stats(big)
    assert big_stats.ids.tolist() == [3 + (1 << 23), 7 + (1 << 23)]
    assert np.array_equal(big_stats.compact, stats.compact)
    assert np.array_equal(big_stats.bboxes, stats.bboxes)


def test_id_colors_are_deterministic_and_distinct() -> None:
    colors = [id_color(i) for i in range(64)]
    assert colors == [id_color(i) for i in range(64)]
    assert len(set(colors)) == 64
    # Consecutive ids (a typical set of tracks) differ clearly.
    assert min(np.abs(np.subtract(colors[i], colors[i + 1])).sum() for i in range(63)) > 60
