"""``vidpan serve`` without a browser: upload checks, ground-truth zips, per-track statistics,
table, timeline, zip, and one whole run of the shipped model with scores."""

from __future__ import annotations

import csv
import io
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vidpan.data.categories import CategoryMapping
from vidpan.demo import SHIPPED_WEIGHTS
from vidpan.errors import InputError
from vidpan.inference.predictor import VideoPredictor
from vidpan.serve.pipeline import (
    TABLE_HEADERS,
    TrackCollector,
    segment_for_page,
    table_csv,
    table_rows,
    timeline_figure,
    zip_directory,
)
from vidpan.serve.uploads import Limits, check_video, read_ground_truth, sample_video
from vidpan.structures import PanopticFrame, Segment, SemanticFrame

LABELS = CategoryMapping.from_names(["person", "car", "sky", "road"], num_things=2)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A 6-frame sample video and its VIPSeg ground-truth zip (the page's sample, smaller)."""
    return sample_video(tmp_path_factory.mktemp("work"), frames=6, size=(64, 112))


@pytest.fixture(scope="module")
def predictor() -> VideoPredictor:
    return VideoPredictor.from_pretrained(SHIPPED_WEIGHTS)


def _panoptic(
    index: int, segments: list[tuple[int, int, float]], shape: tuple[int, int] = (4, 6)
) -> PanopticFrame:
    ids = np.zeros(shape, dtype=np.int32)
    for k, (sid, _, _) in enumerate(segments):
        ids[k % shape[0]] = sid
    return PanopticFrame(index, ids, [Segment(sid, c, c < 2, s, sid) for sid, c, s in segments])


def test_check_video_refuses_bad_uploads(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert check_video(sample.video, Limits()).num_frames == 6
    with pytest.raises(InputError, match="no video"):
        check_video(None, Limits())
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(InputError, match=r"notes\.mp4: not a video this page can read") as err:
        check_video(text, Limits())
    assert str(tmp_path) not in str(err.value)  # the page shows the upload's name, not server paths
    with pytest.raises(InputError, match=r"not a video.*unsupported extension"):
        (tmp_path / "notes.txt").write_text("x")
        check_video(tmp_path / "notes.txt", Limits())
    with pytest.raises(InputError, match=r"too large: .* the limit is 0\.001 MB"):
        check_video(sample.video, Limits(max_megabytes=0.001))
    with pytest.raises(InputError, match="too long: 6 frames, the limit is 5"):
        check_video(sample.video, Limits(max_frames=5))


def test_ground_truth_zip(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gt = read_ground_truth(
        sample.ground_truth, video_name="clip", num_frames=6, dest=tmp_path / "a", limits=Limits()
    )
    data = json.loads(gt.json.read_text())
    assert [v["video_id"] for v in data["videos"]] == ["clip"]
    names = [i["file_name"] for i in data["videos"][0]["images"]]
    assert names == [f"{i:08d}.png" for i in range(6)]
    assert sorted(p.name for p in (gt.masks / "clip").iterdir()) == names
    with pytest.raises(InputError, match="6 annotated frames for a video of 7 frames"):
        read_ground_truth(
            sample.ground_truth, video_name="clip", num_frames=7, dest=tmp_path / "b", limits=Limits()
        )
    not_zip = tmp_path / "gt.zip"
    not_zip.write_text("no")
    with pytest.raises(InputError, match=r"expected a \.zip"):
        read_ground_truth(not_zip, video_name="clip", num_frames=6, dest=tmp_path / "c", limits=Limits())
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../outside.json", "{}")
    with pytest.raises(InputError, match="unsafe path"):
        read_ground_truth(evil, video_name="clip", num_frames=6, dest=tmp_path / "d", limits=Limits())
    partial = tmp_path / "partial.zip"  # the JSON without its masks
    with zipfile.ZipFile(sample.ground_truth) as src, zipfile.ZipFile(partial, "w") as z:
        z.writestr("panoptic_gt_VIPSeg_val.json", src.read("panoptic_gt_VIPSeg_val.json"))
    with pytest.raises(InputError, match=r"mask .*\.png is not in the zip"):
        read_ground_truth(partial, video_name="clip", num_frames=6, dest=tmp_path / "e", limits=Limits())


def test_track_stats_table_timeline_and_zip(tmp_path: Path) -> None:
    frames = [
        _panoptic(0, [(1, 0, 0.9), (5, 2, 1.0)]),
        _panoptic(1, [(5, 2, 1.0)]),
        _panoptic(2, [(1, 0, 0.7), (5, 2, 1.0), (7, 1, 0.5)]),
    ]
    collector = TrackCollector()
    for f in frames:
        collector.add(f)
    tracks = {t.id: t for t in collector.tracks.values()}
    assert collector.num_frames == 3
    assert tracks[1].runs == [[0, 0], [2, 2]] and tracks[1].frames == 2
    assert tracks[1].mean_score == pytest.approx(0.8)
    assert tracks[5].runs == [[0, 2]] and (tracks[5].first, tracks[5].last) == (0, 2)
    rows = table_rows(list(tracks.values()), LABELS)
    assert rows == [
        [1, "person", "yes", 0, 2, 2, 0.8],
        [5, "sky", "no", 0, 2, 3, 1.0],
        [7, "car", "yes", 2, 2, 1, 0.5],
    ]
    parsed = list(csv.reader(io.StringIO(table_csv(rows))))
    assert parsed[0] == TABLE_HEADERS and parsed[1] == ["1", "person", "yes", "0", "2", "2", "0.8"]
    fig = timeline_figure(list(tracks.values()), 3, LABELS)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["#1 person", "#5 sky", "#7 car"]
    assert [len(c.get_paths()) for c in ax.collections] == [2, 1, 1]  # one bar per presence run
    fig.savefig(tmp_path / "timeline.png")
    (tmp_path / "out" / "a").mkdir(parents=True)
    (tmp_path / "out" / "a" / "b.txt").write_text("x")
    (tmp_path / "out" / "c.txt").write_text("y")
    archive = zip_directory(tmp_path / "out", tmp_path / "all.zip")
    assert zipfile.ZipFile(archive).namelist() == ["a/b.txt", "c.txt"]
    assert not list(tmp_path.glob(".*partial"))


def test_track_stats_of_semantic_frames() -> None:
    collector = TrackCollector()  # one "track" per class present, id = class + 1, no score
    collector.add(SemanticFrame(0, np.array([[0, 3]], dtype=np.int32)))
    collector.add(SemanticFrame(1, np.array([[3, 3]], dtype=np.int32)))
    assert {t.id: (t.label, t.frames, t.mean_score) for t in collector.tracks.values()} == {
        1: (0, 1, None),
        4: (3, 2, None),
    }
    assert table_rows(list(collector.tracks.values()), LABELS)[1][:3] == [4, "road", "no"]


def test_frame_limit_while_decoding_leaves_nothing(sample, predictor: VideoPredictor, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = check_video(sample.video, Limits())  # the header says 6 frames; the limit says 4
    with pytest.raises(InputError, match="too long: more than 4 frames"):
        segment_for_page(predictor, source, mode="online", task="vps", run_dir=tmp_path, max_frames=4)
    assert not (tmp_path / "outputs").exists()  # nothing half-written


def test_segment_for_page_with_ground_truth(sample, predictor: VideoPredictor, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = check_video(sample.video, Limits())
    gt = read_ground_truth(sample.ground_truth, video_name=source.name, num_frames=6, dest=tmp_path / "gt",
                           limits=Limits())  # fmt: skip
    seen: list[tuple[str, int, int]] = []
    result = segment_for_page(predictor, source, mode="offline", task="vps", run_dir=tmp_path,
                              ground_truth=gt, progress=lambda *a: seen.append(a))  # fmt: skip
    assert result.num_frames == 6
    # Progress per stage: all frames segmented before any is decided, then written one by one.
    stages = [stage for stage, _, _ in seen]
    assert stages.index("emit") > max(i for i, s in enumerate(stages) if s == "segment")
    assert ("segment", 6, 6) in seen and [e for e in seen if e[0] == "emit"] == [
        ("emit", i, 6) for i in range(1, 7)
    ]
    assert result.scores is not None and result.scores["VPQ1"] is not None and result.scores["VPQ1"] > 30.0
    names = set(zipfile.ZipFile(result.zip).namelist())
    expected = {"config.yaml", "frames.jsonl", "pred.json", "tracks.csv", "timeline.png", "scores.json",
                "overlay/sample.mp4"}  # fmt: skip
    assert expected <= names and any(n.startswith("pan_pred/sample/") for n in names)
    assert result.overlay.is_file()
    # The table's ids are the ids of frames.jsonl, each with its first/last frame and count.
    presence: dict[int, list[int]] = {}
    for line in (result.outputs / "frames.jsonl").read_text().splitlines():
        record = json.loads(line)
        for seg in record["segments"]:
            presence.setdefault(seg["id"], []).append(record["frame"])
    assert {r[0]: (r[3], r[4], r[5]) for r in result.rows} == {
        sid: (min(f), max(f), len(f)) for sid, f in presence.items()
    }


def test_server_run_checks_and_page_builds(sample, predictor: VideoPredictor, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("gradio")
    from vidpan.serve.app import Server, build_app

    server = Server(predictor=predictor, limits=Limits(), work_dir=tmp_path, device_lock=threading.Lock())
    with pytest.raises(InputError, match="mode: expected"):
        server.run(str(sample.video), None, "fast", "vps")
    with pytest.raises(InputError, match="scores against a ground truth are for the vps task"):
        server.run(str(sample.video), str(sample.ground_truth), "online", "vss")
    build_app(server)
