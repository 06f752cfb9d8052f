"""VIPSeg formats: raw panomask coding, JSON round trip, the official conversion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidpan.data.formats.rgb_id import IdGenerator, id2rgb, read_id_png, rgb2id, write_id_png
from vidpan.data.formats.vipseg import (
    Category,
    convert_panomasks,
    encode_raw,
    raw_to_category,
    read_categories,
    read_panomask,
    read_panoptic_video_json,
    read_split,
    write_panomask,
    write_panoptic_video_json,
    write_split,
)
from vidpan.errors import InputError


def test_rgb_id_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1 << 24, size=(7, 9), dtype=np.int64)
    assert np.array_equal(rgb2id(id2rgb(ids)), ids)
    write_id_png(tmp_path / "a.png", ids)
    assert np.array_equal(read_id_png(tmp_path / "a.png"), ids)
    with pytest.raises(InputError, match="differs from the expected"):
        read_id_png(tmp_path / "a.png", expected_size=(9, 7))


def test_read_id_png_rejects_grayscale(tmp_path: Path) -> None:
    from vidpan.data.formats.vspw import write_label_png

    write_label_png(tmp_path / "g.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="expected an RGB PNG"):
        read_id_png(tmp_path / "g.png")


def test_raw_coding() -> None:
    assert encode_raw(5, None) == 6
    assert encode_raw(60, 0) == 6100
    assert encode_raw(60, 3) == 6103
    raw = np.array([0, 6, 124, 6100, 6103, 300])
    assert raw_to_category(raw).tolist() == [-1, 5, 123, 60, 60, 2]
    with pytest.raises(ValueError):
        encode_raw(0, 1)  # 101 < 125 would decode as stuff


def test_panomask_round_trip(tmp_path: Path) -> None:
    raw = np.array([[0, 6, 6100], [12400, 6103, 65535]], dtype=np.int32)
    write_panomask(tmp_path / "m.png", raw)
    assert np.array_equal(read_panomask(tmp_path / "m.png"), raw)


def test_id_generator_palette_clash() -> None:
    # A thing sharing its colour with a stuff class (VIPSeg: Playground_slide vs car) must not
    # reuse the stuff id, and repeated instances get distinct ids.
    gen = IdGenerator({0: (False, (140, 140, 140)), 1: (True, (140, 140, 140))}, seed=0)
    stuff = gen.get_id(0)
    things = {gen.get_id(1) for _ in range(50)}
    assert stuff not in things and len(things) == 50 and 0 not in things


def test_split_lines_end_with_newline(tmp_path: Path) -> None:
    write_split(tmp_path / "val.txt", ["a", "b"])
    assert (tmp_path / "val.txt").read_text() == "a\nb\n"
    assert read_split(tmp_path / "val.txt") == ["a", "b"]


def test_conversion_matches_official_gt(shared_dir: Path, tmp_path: Path) -> None:
    """Our conversion of the oracle's raw panomasks equals the official conversion up to the
    (random) choice of colours: same segment partition, order, categories and areas."""
    root = shared_dir / "fixtures/metrics_oracle/seed_1/data/VIPSeg_720P"
    official = read_panoptic_video_json(root / "panoptic_gt_VIPSeg_val.json")
    categories = read_categories(root / "panoptic_gt_VIPSeg_val.json")
    ours = convert_panomasks(
        root,
        categories,
        out_masks=tmp_path / "rgb",
        out_json=tmp_path / "gt.json",
        video_ids=[v.video_id for v in official.videos],
    )
    assert [v.video_id for v in ours.videos] == [v.video_id for v in official.videos]
    for ov, mv in zip(official.videos, ours.videos, strict=True):
        assert [f.file_name for f in ov.frames] == [f.file_name for f in mv.frames]
        id_map: dict[int, int] = {}
        for f, osegs, msegs in zip(ov.frames, ov.segments, mv.segments, strict=True):
            assert [(s.category_id, s.area) for s in osegs] == [(s.category_id, s.area) for s in msegs]
            o_png = read_id_png(root / "panomasksRGB" / ov.video_id / f.file_name)
            m_png = read_id_png(tmp_path / "rgb" / ov.video_id / f.file_name)
            for os_, ms_ in zip(osegs, msegs, strict=True):
                # The id correspondence is a bijection that is constant over the whole video.
                assert id_map.setdefault(os_.id, ms_.id) == ms_.id
                assert np.array_equal(o_png == os_.id, m_png == ms_.id)
            assert np.array_equal(o_png == 0, m_png == 0)
        assert len(set(id_map.values())) == len(id_map)
    # The written JSON reads back identically.
    again = read_panoptic_video_json(tmp_path / "gt.json")
    assert again.to_json() == ours.to_json()


def test_json_round_trip_and_errors(tmp_path: Path) -> None:
    from vidpan.data.formats.vipseg import FrameInfo, PanopticVideoDataset, SegmentInfo, VideoAnnotation

    ds = PanopticVideoDataset(
        [VideoAnnotation("v1", [FrameInfo("0", "0.png", 4, 3)], [[SegmentInfo(7, 2, 0, 5, (0, 0, 2, 2))]])],
        [Category(2, "car", True, (1, 2, 3))],
    )
    write_panoptic_video_json(tmp_path / "a.json", ds)
    assert read_panoptic_video_json(tmp_path / "a.json").to_json() == ds.to_json()
    bad = ds.to_json()
    del bad["annotations"][0]["annotations"][0]["segments_info"][0]["category_id"]
    (tmp_path / "b.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"segments_info\[0\]: missing field `category_id`"):
        read_panoptic_video_json(tmp_path / "b.json")
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(InputError, match="malformed JSON"):
        read_panoptic_video_json(tmp_path / "c.json")
