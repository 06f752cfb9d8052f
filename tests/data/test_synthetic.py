"""The synthetic benchmark: determinism, on-disk formats, scene properties, planted prediction errors, CLI.

Every property is read back from the written files with the format readers (not asserted from
the generator's configuration); the manifest is only used to know *which* errors were planted.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vidpan.cli.main import main
from vidpan.data.formats.rgb_id import read_id_png
from vidpan.data.formats.vipseg import (
    PanopticVideoDataset,
    raw_to_category,
    read_categories,
    read_panomask,
    read_panoptic_video_json,
    read_split,
)
from vidpan.data.formats.vspw import read_label_png
from vidpan.data.synthetic import (
    CATEGORIES,
    DIFFICULTIES,
    PERTURBATION_KINDS,
    SyntheticDataset,
    generate,
    perturb_video,
    render_video,
    sample_scene,
)
from vidpan.errors import InputError

THINGS = {c.id for c in CATEGORIES if c.isthing}


def tree_hashes(root: Path, under: str = "") -> dict[str, str]:
    base = root / under
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    out = tmp_path_factory.mktemp("noisy") / "synth"
    return generate(out, videos=4, frames=8, size=(64, 96), seed=3, predictions="noisy", mp4=True)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    """A medium dataset large enough for the scene statistics."""
    out = tmp_path_factory.mktemp("scenes") / "synth"
    return generate(out, videos=8, frames=16, size=(72, 120), seed=11, difficulty="medium")


def load_video_raws(ds: SyntheticDataset, video: str) -> np.ndarray:
    paths = sorted((ds.panomasks / video).iterdir())
    return np.stack([read_panomask(p) for p in paths])  # [T, H, W]


# ------------------------------------------------------------------------------------------
# Determinism
# ------------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(tmp_path: Path, noisy: SyntheticDataset) -> None:
    again = generate(
        tmp_path / "again", videos=4, frames=8, size=(64, 96), seed=3, predictions="noisy", mp4=True
    )
    first, second = tree_hashes(noisy.root), tree_hashes(again.root)
    assert len(first) > 100 and first == second
    other = generate(tmp_path / "other", videos=4, frames=8, size=(64, 96), seed=4, predictions="noisy")
    assert tree_hashes(other.root, "VIPSeg/images") != tree_hashes(noisy.root, "VIPSeg/images")


def test_ground_truth_does_not_depend_on_options(tmp_path: Path, noisy: SyntheticDataset) -> None:
    plain = generate(tmp_path / "plain", videos=4, frames=8, size=(64, 96), seed=3)
    for sub in ("VIPSeg", "VSPW"):
        assert tree_hashes(plain.root, sub) == tree_hashes(noisy.root, sub)
    assert plain.pred_json is None and not (plain.root / "pred").exists()
    # A video does not depend on how many videos are generated.
    fewer = generate(tmp_path / "fewer", videos=2, frames=8, size=(64, 96), seed=3, val_fraction=0.0)
    assert tree_hashes(fewer.root, "VIPSeg/panomasks") == {
        k: v for k, v in tree_hashes(noisy.root, "VIPSeg/panomasks").items() if "/0000_" in k or "/0001_" in k
    }


# ------------------------------------------------------------------------------------------
# Layout and formats
# ------------------------------------------------------------------------------------------


def test_categories() -> None:
    assert [c.id for c in CATEGORIES] == list(range(16))
    assert sum(c.isthing for c in CATEGORIES) == 8
    assert min(THINGS) >= 1
    assert len({c.name for c in CATEGORIES}) == 16 and len({c.color for c in CATEGORIES}) == 16


def test_layout_and_formats(noisy: SyntheticDataset) -> None:
    ds = noisy
    cats = read_categories(ds.categories_path)
    assert cats == list(CATEGORIES)
    assert (
        read_split(ds.vipseg_root / "train.txt")
        == ds.train_videos
        == ["0000_synth", "0001_synth", "0002_synth"]
    )
    assert read_split(ds.vipseg_root / "val.txt") == ds.val_videos == ["0003_synth"]
    assert (ds.vipseg_root / "val.txt").read_text() == "0003_synth\n"
    assert read_split(ds.vspw_root / "train.txt") == ds.train_videos
    assert read_split(ds.vspw_root / "val.txt") == ds.val_videos
    for json_path, split in ((ds.gt_json_train, ds.train_videos), (ds.gt_json_val, ds.val_videos)):
        gt = read_panoptic_video_json(json_path)
        assert gt.categories == list(CATEGORIES)
        assert [v.video_id for v in gt.videos] == split
        for video in gt.videos:
            check_gt_video(ds, video)


def check_gt_video(ds: SyntheticDataset, video: Any) -> None:
    assert re.fullmatch(r"\d{4}_synth", video.video_id)
    assert [f.id for f in video.frames] == [f"{5 * t:08d}" for t in range(8)]
    raw_to_id: dict[int, int] = {}
    for frame, segs in zip(video.frames, video.segments, strict=True):
        assert (frame.height, frame.width) == (64, 96) and frame.file_name == f"{frame.id}.png"
        ids = read_id_png(ds.gt_masks / video.video_id / frame.file_name, expected_size=(64, 96))
        raw = read_panomask(ds.panomasks / video.video_id / frame.file_name)
        vspw = read_label_png(
            ds.vspw_root / "data" / video.video_id / "mask" / frame.file_name, expected_size=(64, 96)
        )
        for jpg_dir in (ds.images / video.video_id, ds.vspw_root / "data" / video.video_id / "origin"):
            with Image.open(jpg_dir / f"{frame.id}.jpg") as im:
                assert im.format == "JPEG" and im.mode == "RGB" and im.size == (96, 64)
        # Every id in the PNG is in segments_info and vice versa, with the right area and class.
        values, counts = np.unique(ids, return_counts=True)
        png = {int(v): int(n) for v, n in zip(values, counts, strict=True) if v}
        assert png == {s.id: s.area for s in segs}
        assert [s.iscrowd for s in segs] == [0] * len(segs) and all(s.bbox is None for s in segs)
        cat_of = {s.id: s.category_id for s in segs}
        assert set(cat_of.values()) <= {c.id for c in CATEGORIES}
        # The id map is the official conversion of the raw panomask.
        assert np.array_equal(ids == 0, raw == 0)
        for value in np.unique(raw[raw > 0]).tolist():
            sel = raw == value
            seg_id = int(ids[sel][0])
            assert np.all(ids[sel] == seg_id)
            assert raw_to_id.setdefault(value, seg_id) == seg_id  # one id per raw value per video
            assert cat_of[seg_id] == int(raw_to_category(np.array(value)))
            if value >= 125:
                assert cat_of[seg_id] in THINGS
        # Stuff segments come before things (ascending raw value).
        kinds = [s.category_id in THINGS for s in segs]
        assert kinds == sorted(kinds)
        # VSPW labels: class + 1 on labelled pixels, 0 ("others") or 255 on void.
        cats = raw_to_category(raw)
        assert np.array_equal(vspw[raw > 0], (cats[raw > 0] + 1).astype(np.uint8))
        assert set(np.unique(vspw[raw == 0]).tolist()) <= {0, 255}
    assert len(set(raw_to_id.values())) == len(raw_to_id)


def test_mp4_videos(noisy: SyntheticDataset) -> None:
    import av

    assert noisy.mp4_dir is not None
    for vid in noisy.train_videos + noisy.val_videos:
        with av.open(str(noisy.mp4_dir / f"{vid}.mp4")) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert len(frames) == 8 and frames[0].shape == (64, 96, 3)
        with Image.open(noisy.images / vid / "00000000.jpg") as im:
            jpg = np.asarray(im, dtype=np.float32)
        assert np.abs(frames[0].astype(np.float32) - jpg).mean() < 12


# ------------------------------------------------------------------------------------------
# Scene properties, measured on the written ground truth
# ------------------------------------------------------------------------------------------


def thing_tracks(raws: np.ndarray) -> dict[int, dict[int, tuple[float, float, int]]]:
    """raw value -> {frame: (centroid y, centroid x, area)} for every thing."""
    out: dict[int, dict[int, tuple[float, float, int]]] = {}
    for t, raw in enumerate(raws):
        for value in np.unique(raw[raw >= 125]).tolist():
            ys, xs = np.nonzero(raw == value)
            out.setdefault(value, {})[t] = (float(ys.mean()), float(xs.mean()), len(ys))
    return out


def stuff_shift(a: np.ndarray, b: np.ndarray, max_shift: int) -> tuple[int, int]:
    """The (dy, dx) that best aligns the stuff labels of frame ``b`` with frame ``a`` (b = a moved by -shift)."""
    best, best_score = (0, 0), -1.0
    h, w = a.shape
    for dy in range(-max_shift // 4, max_shift // 4 + 1):
        for dx in range(-max_shift, max_shift + 1):
            pa = a[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
            pb = b[max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)]
            valid = (pa > 0) & (pa < 125) & (pb > 0) & (pb < 125)
            if valid.sum() < 0.3 * h * w:
                continue
            score = float((pa[valid] == pb[valid]).mean())
            if score > best_score:
                best, best_score = (dy, dx), score
    return best


def test_scene_properties(scenes: SyntheticDataset) -> None:
    counts = dict(enter=0, leave=0, occlusion=0, crossing=0, pan=0, void=0, moving=0, multi_stuff=0)
    videos = scenes.train_videos + scenes.val_videos
    for vid in videos:
        raws = load_video_raws(scenes, vid)
        t_count, _, w = raws.shape
        tracks = thing_tracks(raws)
        frames_of = {v: sorted(f) for v, f in tracks.items()}
        counts["enter"] += any(f[0] > 0 for f in frames_of.values())
        counts["leave"] += any(f[-1] < t_count - 1 for f in frames_of.values())
        counts["moving"] += any(
            abs(tr[f[-1]][1] - tr[f[0]][1]) > 0.1 * w for tr, f in ((tracks[v], frames_of[v]) for v in tracks)
        )
        counts["void"] += bool((raws == 0).any())
        counts["multi_stuff"] += len(np.unique(raws[(raws > 0) & (raws < 125)])) >= 2
        # Occlusion: two thing instances touching (one drawn over the other) in some frame.
        touching = False
        for raw in raws:
            for a, b in ((raw[:, 1:], raw[:, :-1]), (raw[1:, :], raw[:-1, :])):
                touching |= bool(((a >= 125) & (b >= 125) & (a != b)).any())
        counts["occlusion"] += touching
        # Same-class crossing: the horizontal order of two same-class instances flips.
        crossing = False
        for a in tracks:
            for b in tracks:
                if a < b and a // 100 == b // 100:
                    both = sorted(set(tracks[a]) & set(tracks[b]))
                    signs = {np.sign(tracks[a][t][1] - tracks[b][t][1]) for t in both}
                    crossing |= {-1.0, 1.0} <= signs
        counts["crossing"] += crossing
        dy, dx = stuff_shift(raws[0], raws[-1], max_shift=w // 2)
        counts["pan"] += (dy, dx) != (0, 0)
    n = len(videos)
    assert counts["enter"] >= n - 1 and counts["leave"] >= n - 1, counts
    assert counts["moving"] == n and counts["multi_stuff"] == n, counts
    assert counts["occlusion"] >= n // 2 and counts["crossing"] >= n // 2, counts
    assert counts["pan"] >= n - 2 and counts["void"] >= 1, counts


def test_pan_is_a_shift_of_the_world() -> None:
    """Consecutive frames' stuff labels are a pure translation by the camera step."""
    scene = sample_scene(
        np.random.default_rng([5, 0, 0]),
        video_id="x",
        frames=6,
        height=64,
        width=96,
        difficulty=DIFFICULTIES["hard"],
    )
    frames = list(render_video(scene, np.random.default_rng(0)))
    moved = 0
    for t in range(1, len(frames)):
        dy, dx = (int(v) for v in scene.camera[t] - scene.camera[t - 1])
        a, b = frames[t - 1].stuff_raw, frames[t].stuff_raw
        h, w = a.shape
        # b(y, x) = a(y + dy, x + dx) where both are inside the frame.
        assert np.array_equal(
            b[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)],
            a[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)],
        )
        moved += (dy, dx) != (0, 0)
    assert moved >= 3


# ------------------------------------------------------------------------------------------
# Noisy predictions
# ------------------------------------------------------------------------------------------


def best_match(gt_mask: np.ndarray, pred: np.ndarray) -> tuple[int, float]:
    """(pred id, IoU) of the predicted segment overlapping ``gt_mask`` best (0 = unlabeled)."""
    ids, inter = np.unique(pred[gt_mask], return_counts=True)
    best, best_iou = 0, 0.0
    for pid, n in zip(ids.tolist(), inter.tolist(), strict=True):
        if pid == 0:
            continue
        iou = n / (gt_mask.sum() + (pred == pid).sum() - n)
        if iou > best_iou:
            best, best_iou = pid, iou
    return best, best_iou


def check_perturbation(
    p: dict[str, Any], names: dict[str, int], raws: np.ndarray, preds: np.ndarray, pcats: list[dict[int, int]]
) -> None:
    """Assert that planted error ``p`` is visible in the prediction ([T, H, W] raws / pred ids)."""
    t_count = len(raws)
    kind = p["type"]

    def matches(track: str) -> dict[int, tuple[int, float]]:
        value = names[track]
        return {t: best_match(raws[t] == value, preds[t]) for t in range(t_count) if (raws[t] == value).any()}

    if kind == "missed_track":
        assert all(iou <= 0.5 for _, iou in matches(p["track"]).values())
    elif kind == "truncated_track":
        assert all(iou <= 0.5 for t, (_, iou) in matches(p["track"]).items() if t > p["frame"])
    elif kind == "thing_flicker":
        m = matches(p["track"])
        assert p["frames"] and all(m[t][1] <= 0.5 for t in p["frames"])
    elif kind == "wrong_class":
        good = [pcats[t][pid] for t, (pid, iou) in matches(p["track"]).items() if iou > 0.5]
        assert good and set(good) == {p["category_id"]}
    elif kind == "class_switch":
        value = names[p["track"]]
        for t, (pid, iou) in matches(p["track"]).items():
            if iou > 0.5:
                want = p["category_id"] if t >= p["frame"] else int(raw_to_category(np.array(value)))
                assert pcats[t][pid] == want
    elif kind in ("id_swap", "new_id"):
        tracks = p["tracks"] if kind == "id_swap" else [p["track"], p["track"]]
        before = {pid for t, (pid, iou) in matches(tracks[0]).items() if iou > 0.5 and t < p["frame"]}
        after = {pid for t, (pid, iou) in matches(tracks[1]).items() if iou > 0.5 and t >= p["frame"]}
        if kind == "new_id":
            assert not before & after
        elif before and after:
            assert before & after  # the id of the first track continues on the second
    elif kind in ("shifted_mask", "dilated_mask"):
        value = names[p["track"]]
        for t in p["frames"]:
            gt = raws[t] == value
            pid, iou = best_match(gt, preds[t])
            assert iou < 1.0
            if kind == "dilated_mask" and pid:
                assert (preds[t] == pid).sum() > gt.sum()
    elif kind == "split_stuff":
        # Some later frame has two ids of the class: one only right of x, one reaching left of x.
        cat, x = p["category_id"], p["x"]
        found = False
        for t in range(p["frame"], t_count):
            ids = [pid for pid, c in pcats[t].items() if c == cat]
            right = [pid for pid in ids if not (preds[t][:, :x] == pid).any()]
            found |= bool(right) and len(ids) >= 2
        assert found
    elif kind == "stuff_flicker":
        for t in p["frames"]:
            region = raw_to_category(raws[t]) == p["category_id"]
            if region.sum() > 20:
                pid, _ = best_match(region, preds[t])
                assert pcats[t].get(pid) == p["predicted_category_id"]
    elif kind == "false_positive":
        # Some listed frame has a segment of the class that matches no GT segment.
        assert any(
            best_match(preds[t] == pid, raws[t])[1] <= 0.5
            for t in p["frames"]
            for pid, c in pcats[t].items()
            if c == p["category_id"]
        )
    elif kind == "void_prediction":
        void = [t for t in range(p["frame"], t_count) if (raws[t] == 0).any()]
        assert void and all((preds[t][raws[t] == 0] != 0).mean() > 0.5 for t in void)
    elif kind == "unlabeled_patches":
        assert all(((preds[t] == 0) & (raws[t] != 0)).any() for t in p["frames"])
    else:
        raise AssertionError(f"unknown perturbation {kind}")


def read_prediction(
    ds: SyntheticDataset, vid: str, segs: list[list[Any]]
) -> tuple[np.ndarray, list[dict[int, int]]]:
    assert ds.pred_masks is not None
    frames = sorted((ds.panomasks / vid).iterdir())
    preds = []
    for path, fsegs in zip(frames, segs, strict=True):
        ids = read_id_png(ds.pred_masks / vid / path.name)
        values, counts = np.unique(ids, return_counts=True)
        assert {int(v): int(n) for v, n in zip(values, counts, strict=True) if v} == {
            s.id: s.area for s in fsegs
        }
        preds.append(ids)
    return np.stack(preds), [{s.id: s.category_id for s in fsegs} for fsegs in segs]


def test_noisy_predictions_carry_the_planted_errors(noisy: SyntheticDataset) -> None:
    assert noisy.pred_json is not None and noisy.vss_pred is not None
    pred = read_panoptic_video_json(noisy.pred_json, require_videos=False)
    gt = PanopticVideoDataset(
        read_panoptic_video_json(noisy.gt_json_train).videos
        + read_panoptic_video_json(noisy.gt_json_val).videos
    )
    manifest = json.loads(noisy.manifest.read_text())
    assert manifest["generator"] == "vidpan.data.synthetic"
    pred_map = pred.video_map()
    planted = 0
    for video, scene in zip(gt.videos, manifest["scenes"], strict=True):
        assert scene["video_id"] == video.video_id
        pv = pred_map[video.video_id]  # every GT video is predicted, frame for frame
        assert [f.file_name for f in pv.frames] == [f.file_name for f in video.frames]
        raws = load_video_raws(noisy, video.video_id)
        preds, pcats = read_prediction(noisy, video.video_id, pv.segments)
        assert not np.array_equal(preds != 0, raws != 0) or any(c for c in pcats)  # not the GT itself
        names = {th["name"]: th["raw"] for th in scene["things"]}
        for p in scene["prediction_perturbations"]:
            check_perturbation(p, names, raws, preds, pcats)
            planted += 1
        # The VSS prediction is the class map of the panoptic prediction (0-based, uint8).
        for t, f in enumerate(video.frames):
            sem = read_label_png(noisy.vss_pred / video.video_id / f.file_name, expected_size=(64, 96))
            lut = {0: 0, **pcats[t]}
            assert np.array_equal(sem, np.vectorize(lut.__getitem__)(preds[t]).astype(np.uint8))
    assert planted >= 3 * len(gt.videos)


def test_every_perturbation_kind() -> None:
    """All kinds planted at once on one video, each checked on the result."""
    for s in range(50):
        scene = sample_scene(
            np.random.default_rng([s, 0, 0]),
            video_id="v",
            frames=10,
            height=64,
            width=96,
            difficulty=DIFFICULTIES["hard"],
        )
        if scene.voids and len(scene.things) >= 9:
            break
    frames = list(render_video(scene, np.random.default_rng(1)))
    raws = np.stack([f.raw for f in frames])
    if not (raws == 0).any():
        pytest.fail("no void rendered in the chosen scene")
    names = {th.name: th.raw for th in scene.things}
    stuff_raws = np.stack([f.stuff_raw for f in frames])
    # Two halves (a video has too few tracks for every track-level error at once).
    for kinds in (PERTURBATION_KINDS[:7], PERTURBATION_KINDS[7:]):
        pred = perturb_video(scene, raws, stuff_raws, np.random.default_rng(2), kinds=kinds)
        planted = [p["type"] for p in pred.perturbations]
        assert planted == list(kinds)  # applied in KINDS order, none skipped
        preds = np.stack(pred.id_maps).astype(np.int64)
        pcats = [{s.id: s.category_id for s in segs} for segs in pred.segments]
        for p in pred.perturbations:
            check_perturbation(p, names, raws, preds, pcats)
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturb_video(scene, raws, raws, np.random.default_rng(0), kinds=("melt",))


# ------------------------------------------------------------------------------------------
# Arguments and the command line
# ------------------------------------------------------------------------------------------


def cli_cases(tmp: Path) -> Iterator[list[str]]:
    out = str(tmp / "out")
    yield ["--out", out, "--size", "64by96"]
    yield ["--out", out, "--size", "0x96"]
    yield ["--out", out, "--videos", "0"]
    yield ["--out", out, "--frames", "-3"]
    yield ["--out", out, "--frames", "two"]
    yield ["--out", out, "--seed", "-1"]
    yield ["--out", out, "--difficulty", "brutal"]
    yield ["--out", out, "--val-fraction", "1.5"]
    yield ["--out", out, "--predictions", "perfect"]
    yield ["--out", out, "--size", "65x96", "--mp4"]
    yield ["--out", str(tmp / "a_file" / "out")]  # parent is a file: not writable


def test_cli_bad_arguments_exit_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a_file").write_text("x")
    for args in cli_cases(tmp_path):
        assert main(["synth", *args, "--videos" if "--videos" not in args else "--frames", "1"]) == 2, args
        assert "vidpan synth: error:" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_cli_writes_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "synth"
    assert (
        main(["synth", "--out", str(out), "--videos", "2", "--frames", "3", "--size", "32x48", "--seed", "7"])
        == 0
    )
    text = capsys.readouterr().out
    assert "wrote 2 videos x 3 frames at 32x48" in text and "1 train, 1 val" in text
    assert len(list((out / "VIPSeg/panomasks/0001_synth").iterdir())) == 3
    # An earlier synthetic output may be replaced; any other non-empty directory may not.
    assert main(["synth", "--out", str(out), "--videos", "1", "--frames", "2", "--size", "32x48"]) == 0
    assert sorted(p.name for p in (out / "VIPSeg/panomasks").iterdir()) == ["0000_synth"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="not empty"):
        generate(tmp_path / "mine", videos=1, frames=1, size=(32, 48))
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidpan.data.synthetic import writer

    calls = {"n": 0}
    real = writer.convert_video

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # the second video fails after the first one was written
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(writer, "convert_video", failing)
    with pytest.raises(RuntimeError, match="boom"):
        generate(tmp_path / "out", videos=3, frames=2, size=(32, 48))
    assert list(tmp_path.iterdir()) == []
