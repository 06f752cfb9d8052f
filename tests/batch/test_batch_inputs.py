"""--video-list parsing, the manifest file format and the config hash (no model runs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from vidpan.batch.inputs import resolve_video_list, shard
from vidpan.batch.manifest import (
    InputIdentity,
    ManifestRecord,
    ManifestWriter,
    config_hash,
    consolidate,
    input_identity,
    latest,
    manifest_files,
    read_records,
)
from vidpan.errors import InputError
from vidpan.inference.segment_job import SegmentOptions


def _tree(root: Path) -> Path:
    (root / "vids").mkdir()
    for name in ("b.mp4", "a.mkv", "notes.txt"):
        (root / "vids" / name).write_bytes(b"x")
    frames = root / "vids" / "clip"
    frames.mkdir()
    (frames / "00000.jpg").write_bytes(b"x")
    (root / "vids" / "empty").mkdir()
    return root / "vids"


def test_list_file_directory_and_glob(tmp_path: Path) -> None:
    vids = _tree(tmp_path)
    listing = tmp_path / "list.txt"
    listing.write_text("# my videos\nvids/b.mp4\n\n  vids/clip   # a frame folder\nvids/b.mp4\n/abs/c.mp4\n")
    items = resolve_video_list(str(listing))
    assert [i.name for i in items] == ["c", "b", "clip"]  # sorted by path, duplicates once
    assert items[1].path == (tmp_path / "vids" / "b.mp4").absolute()
    assert [i.name for i in resolve_video_list(str(vids))] == ["a", "b", "clip"]  # videos + frame folders
    assert [i.name for i in resolve_video_list(str(tmp_path / "**" / "*.mp4"))] == ["b"]
    assert [i.name for i in shard(resolve_video_list(str(vids)), 1, 2)] == ["b"]


def test_bad_lists_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such video list"):
        resolve_video_list(str(tmp_path / "missing.txt"))
    with pytest.raises(InputError, match="no videos"):
        resolve_video_list(str(tmp_path / "*.mp4"))
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "x" / "v.mp4").write_bytes(b"x")
    (tmp_path / "y" / "v.mp4").write_bytes(b"x")
    with pytest.raises(InputError, match="collide"):
        resolve_video_list(str(tmp_path / "*" / "v.mp4"))


def _record(video: str, status: str = "done", t: float = 1.0) -> ManifestRecord:
    return ManifestRecord(
        video=video, input=InputIdentity("/v.mp4", 1, 2), config_hash="h", status=status,  # type: ignore[arg-type]
        started_at=t, seconds=0.5,
    )  # fmt: skip


def test_manifest_tolerates_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    with ManifestWriter(path) as w:
        w.append(_record("a"))
    with open(path, "a") as f:
        f.write('{"video": "b", "stat')  # a write cut short by SIGKILL
    assert [r.video for r in read_records([path])] == ["a"]
    with ManifestWriter(path) as w:  # the next run starts a fresh line
        w.append(_record("c", t=2.0))
    assert [r.video for r in read_records([path])] == ["a", "c"]
    assert path.read_text().count("\n") == 3


def test_rank_files_merge_and_last_record_wins(tmp_path: Path) -> None:
    with ManifestWriter(tmp_path / "manifest.jsonl") as w:
        w.append(_record("a", "failed", t=1.0))
    with ManifestWriter(tmp_path / "manifest.rank1.jsonl") as w:
        w.append(_record("a", "done", t=3.0))
        w.append(_record("b", "done", t=2.0))
    last = latest(read_records(manifest_files(tmp_path)))
    assert {k: r.status for k, r in last.items()} == {"a": "done", "b": "done"}
    records = consolidate(tmp_path)
    assert len(records) == 3 and not list(tmp_path.glob("manifest.rank*"))
    assert read_records(manifest_files(tmp_path)) == records


def test_identity_and_config_hash(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"abc")
    a = input_identity(video, sha256=True)
    video.write_bytes(b"abcd")
    assert input_identity(video) != a
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"w1")
    opts = SegmentOptions(weights=str(weights))
    h = config_hash(opts)
    assert config_hash(dataclasses.replace(opts, progress=True)) == h  # does not change outputs
    assert config_hash(dataclasses.replace(opts, overrides=("inference.window_size=5",))) != h
    weights.write_bytes(b"w2")
    assert config_hash(opts) != h  # same path, other weights
