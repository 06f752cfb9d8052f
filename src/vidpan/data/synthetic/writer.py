"""Write the synthetic benchmark in the real VIPSeg / VSPW layouts: :func:`generate`.

Layout under ``out_dir`` (all built in a temporary sibling directory renamed at the end):

```
VIPSeg/images/<video>/<frame>.jpg            RGB frames (JPEG, quality 90)
VIPSeg/panomasks/<video>/<frame>.png         raw 16-bit panomasks
VIPSeg/panomasksRGB/<video>/<frame>.png      RGB-id PNGs (official conversion, seeded colours)
VIPSeg/panoptic_gt_VIPSeg_{train,val}.json   COCO-video panoptic JSON per split
VIPSeg/{train,val}.txt                       split lists
VIPSeg/panoVIPSeg_categories.json            the category list
VSPW/data/<video>/origin/<frame>.jpg         the same frames
VSPW/data/<video>/mask/<frame>.png           raw VSPW labels (class + 1, 0 others, 255 void)
VSPW/{train,val}.txt
pred/pred.json + pred/pan_pred/<video>/<frame>.png   noisy VPS prediction (``predictions="noisy"``)
vss_pred/<video>/<frame>.png                 noisy VSS prediction (0-based classes)
videos/<video>.mp4                           H.264 videos (``mp4=True``)
coco/...                                     every frame as a COCO panoptic image (``coco=True``;
                                             layout in :mod:`vidpan.data.synthetic.coco`)
manifest.json                                scenes, splits and planted prediction errors
```

Video ids are ``<n>_synth`` with ``n`` the 4-digit, zero-padded video index; frame stems are
VIPSeg-like ``00000000, 00000005, ...`` (8 digits, step 5). Each video draws from its own
generators seeded by ``(seed, index, stream)`` — separate streams for the scene, the rendering
noise, the id colours and the prediction errors — so a video does not depend on the number of
videos, and turning predictions or mp4 output on leaves the ground truth byte-identical.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vidpan.data.formats.rgb_id import encode_png, id2rgb
from vidpan.data.formats.vipseg import (
    Category,
    FrameInfo,
    PanopticVideoDataset,
    SegmentInfo,
    VideoAnnotation,
    convert_video,
    write_panoptic_video_json,
    write_split,
)
from vidpan.data.synthetic.categories import CATEGORIES, CATEGORY_NAMES
from vidpan.data.synthetic.coco import (
    COCO_DIR,
    SPLITS,
    CocoSplit,
    coco_categories,
    coco_image_id,
    write_coco_frame,
    write_coco_jsons,
)
from vidpan.data.synthetic.noisy import perturb_video
from vidpan.data.synthetic.render import render_video
from vidpan.data.synthetic.scene import DIFFICULTIES, Scene, sample_scene
from vidpan.errors import InputError
from vidpan.utils.atomic import atomic_directory, check_writable_dir

GENERATOR = "vidpan.data.synthetic"
VERSION = 1
FRAME_STEP = 5  # VIPSeg-like frame numbering
JPEG_QUALITY = 90
MP4_FPS = 6
# Generator streams of one video: [seed, index, stream].
_SCENE, _RENDER, _COLOURS, _PRED = 0, 1, 2, 3


@dataclass
class SyntheticDataset:
    """Paths (and splits) of a generated synthetic benchmark."""

    root: Path
    vipseg_root: Path
    images: Path  # VIPSeg/images
    panomasks: Path  # VIPSeg/panomasks (raw 16-bit)
    gt_masks: Path  # VIPSeg/panomasksRGB
    gt_json_train: Path
    gt_json_val: Path
    categories_path: Path
    vspw_root: Path
    manifest: Path
    train_videos: list[str]
    val_videos: list[str]
    categories: list[Category] = field(default_factory=lambda: list(CATEGORIES))
    pred_json: Path | None = None
    pred_masks: Path | None = None  # pred/pan_pred
    vss_pred: Path | None = None
    mp4_dir: Path | None = None
    coco_root: Path | None = None  # coco/ (``coco=True``): annotations/, {train,val}2017/, panoptic_*/


def video_id(index: int) -> str:
    return f"{index:04d}_synth"


def frame_stem(t: int) -> str:
    return f"{t * FRAME_STEP:08d}"


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    # Plain writes: the whole tree is renamed into place only when complete.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def rgb_to_yuv420p(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 RGB -> [3H/2, W] uint8 planar YUV 4:2:0 (BT.601, limited range; Y, then U, V).

    Done in NumPy so the bytes handed to the encoder do not depend on the FFmpeg build's swscale.
    """
    h, w = image.shape[:2]
    rgb = image.astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    # Chroma of the 2x2 block averages: [H, W] -> [H/2, 2, W/2, 2] -> [H/2, W/2].
    blocks = rgb.reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    rb, gb, bb = blocks[..., 0], blocks[..., 1], blocks[..., 2]
    u = 128.0 + (-37.797 * rb - 74.203 * gb + 112.0 * bb) / 255.0
    v = 128.0 + (112.0 * rb - 93.786 * gb - 18.214 * bb) / 255.0
    planes = [np.clip(np.rint(p), 0, 255).astype(np.uint8).ravel() for p in (y, u, v)]
    return np.concatenate(planes).reshape(h * 3 // 2, w)


def _write_mp4(path: Path, frames: list[np.ndarray]) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=MP4_FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # Byte-identical output: x264's look-ahead (B-frame decisions, mb-tree, CRF rate control)
        # was observed to vary from run to run with its SIMD code, and threading adds more; a
        # constant quantizer without look-ahead, on one thread, is deterministic (and fast).
        stream.options = {
            "qp": "18",
            "preset": "veryfast",
            "x264-params": "bframes=0:rc-lookahead=0:mbtree=0:scenecut=0",
        }
        stream.codec_context.thread_count = 1
        for t, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(image), format="yuv420p")
            # Explicit timestamps rather than ones guessed by the encoder / muxer.
            frame.pts, frame.time_base = t, Fraction(1, MP4_FPS)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _scene_manifest(scene: Scene, split: str) -> dict[str, Any]:
    layout = scene.stuff
    return {
        "video_id": scene.video_id,
        "split": split,
        "frames": scene.frames,
        "stuff": [CATEGORY_NAMES[c] for c in layout.bands]
        + ([CATEGORY_NAMES[layout.blob]] if layout.blob is not None else []),
        "stuff_layout": "bands+blob" if layout.blob is not None else "bands",
        "camera_start": [int(v) for v in scene.camera[0]],
        "camera_end": [int(v) for v in scene.camera[-1]],
        "void": [{"vspw_label": v.vspw_label} for v in scene.voids],
        "things": [
            {
                "name": th.name,
                "category_id": th.category,
                "category": CATEGORY_NAMES[th.category],
                "raw": th.raw,
                "role": th.role,
                "depth": th.depth,
                "pattern": th.appearance.pattern,
            }
            for th in scene.things
        ],
        "crossings": [list(pair) for pair in scene.crossings],
    }


def _video(
    tmp: Path,
    index: int,
    split: str,
    *,
    seed: int,
    frames: int,
    size: tuple[int, int],
    difficulty: str,
    predictions: str | None,
    mp4: bool,
    coco: CocoSplit | None = None,
) -> tuple[VideoAnnotation, list[list[SegmentInfo]] | None, dict[str, Any]]:
    """Render, convert and write one video; returns its GT annotation, pred segments, manifest entry."""
    vid = video_id(index)
    h, w = size
    scene = sample_scene(
        np.random.default_rng([seed, index, _SCENE]),
        video_id=vid,
        frames=frames,
        height=h,
        width=w,
        difficulty=DIFFICULTIES[difficulty],
    )
    raws, stuff_raws, images, jpegs = [], [], [], []
    for t, frame in enumerate(render_video(scene, np.random.default_rng([seed, index, _RENDER]))):
        stem = frame_stem(t)
        jpg = _jpeg(frame.image)
        _write(tmp / "VIPSeg/images" / vid / f"{stem}.jpg", jpg)
        _write(tmp / "VSPW/data" / vid / "origin" / f"{stem}.jpg", jpg)
        _write(tmp / "VIPSeg/panomasks" / vid / f"{stem}.png", encode_png(frame.raw.astype(np.uint16)))
        _write(tmp / "VSPW/data" / vid / "mask" / f"{stem}.png", encode_png(frame.vspw))
        raws.append(frame.raw)
        stuff_raws.append(frame.stuff_raw)
        if coco is not None:
            jpegs.append(jpg)
        if mp4:
            images.append(frame.image)
    # The official conversion, with a per-video colour stream.
    colour_seed = int(np.random.default_rng([seed, index, _COLOURS]).integers(0, 2**31))
    id_maps, segments = convert_video(raws, CATEGORIES, seed=colour_seed)
    infos = []
    for t, ids in enumerate(id_maps):
        stem = frame_stem(t)
        _write(tmp / "VIPSeg/panomasksRGB" / vid / f"{stem}.png", encode_png(id2rgb(ids)))
        infos.append(FrameInfo(stem, f"{stem}.png", w, h))
    entry = _scene_manifest(scene, split)
    pred_segments = None
    if predictions == "noisy":
        pred = perturb_video(
            scene, np.stack(raws), np.stack(stuff_raws), np.random.default_rng([seed, index, _PRED])
        )
        for t, (ids, cls) in enumerate(zip(pred.id_maps, pred.semantic, strict=True)):
            stem = frame_stem(t)
            _write(tmp / "pred/pan_pred" / vid / f"{stem}.png", encode_png(id2rgb(ids)))
            _write(tmp / "vss_pred" / vid / f"{stem}.png", encode_png(cls))
        pred_segments = pred.segments
        entry["prediction_perturbations"] = pred.perturbations
    if coco is not None:
        for t, (ids, segs) in enumerate(zip(id_maps, segments, strict=True)):
            write_coco_frame(
                tmp / COCO_DIR,
                coco,
                coco_image_id(index, t),
                jpeg=jpegs[t],
                ids=ids,
                segments=segs,
                pred_ids=pred.id_maps[t] if pred_segments is not None else None,
                pred_segments=pred_segments[t] if pred_segments is not None else None,
            )
    if mp4:
        _write_mp4(tmp / "videos" / f"{vid}.mp4", images)
    return VideoAnnotation(vid, infos, segments), pred_segments, entry


def parse_size(text: str) -> tuple[int, int]:
    """``"HxW"`` -> (H, W); raises :class:`InputError` otherwise."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise InputError(f"--size: expected HxW such as 192x320, got {text!r}")
    return int(parts[0]), int(parts[1])


def _validate(
    out_dir: Path,
    videos: int,
    frames: int,
    size: tuple[int, int],
    seed: int,
    difficulty: str,
    val_fraction: float,
    predictions: str | None,
    mp4: bool,
) -> None:
    def is_int(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    for name, value in (("videos", videos), ("frames", frames)):
        if not is_int(value) or value < 1:
            raise InputError(f"{name}: expected a positive integer, got {value!r}")
    if videos > 10000:
        raise InputError(f"videos: at most 10000 (4-digit video ids), got {videos}")
    if len(size) != 2 or any(not is_int(v) or v < 16 for v in size):
        raise InputError(f"size: expected (height, width) of integers >= 16, got {size!r}")
    if not is_int(seed) or seed < 0:
        raise InputError(f"seed: expected a non-negative integer, got {seed!r}")
    if difficulty not in DIFFICULTIES:
        raise InputError(f"difficulty: expected one of {', '.join(DIFFICULTIES)}, got {difficulty!r}")
    if not isinstance(val_fraction, (int, float)) or not 0.0 <= val_fraction <= 1.0:
        raise InputError(f"val_fraction: expected a number in [0, 1], got {val_fraction!r}")
    if predictions not in (None, "noisy"):
        raise InputError(f"predictions: expected None or 'noisy', got {predictions!r}")
    if mp4 and (size[0] % 2 or size[1] % 2):
        raise InputError(f"mp4: H.264 (yuv420p) needs an even height and width, got {size[0]}x{size[1]}")
    check_writable_dir(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        manifest = out_dir / "manifest.json"
        try:
            previous = json.loads(manifest.read_text(encoding="utf-8")).get("generator")
        except (OSError, ValueError, AttributeError):
            previous = None
        if previous != GENERATOR:
            raise InputError(
                "output directory is not empty and holds no earlier synthetic benchmark", path=out_dir
            )


def generate(
    out_dir: str | Path,
    *,
    videos: int = 50,
    frames: int = 24,
    size: tuple[int, int] = (192, 320),
    seed: int = 0,
    difficulty: str = "medium",
    val_fraction: float = 0.2,
    predictions: str | None = None,
    mp4: bool = False,
    coco: bool = False,
) -> SyntheticDataset:
    """Generate the synthetic VPS/VSS benchmark under ``out_dir`` (see the module docstring).

    The last ``round(videos * val_fraction)`` videos (at least one when ``val_fraction > 0``) form
    the val split. With ``coco`` every frame is also written as a COCO panoptic image (train
    videos -> ``train2017``, val videos -> ``val2017``). Predictions, when asked for, cover every video (the evaluators ignore extra
    videos, so they score against either split). ``out_dir`` is replaced atomically: it must not
    exist, be empty, or hold an earlier synthetic benchmark. Same arguments -> byte-identical files.
    """
    out = Path(out_dir)
    try:
        size = tuple(int(v) if isinstance(v, np.integer) else v for v in size)  # type: ignore[assignment]
    except TypeError:
        raise InputError(f"size: expected (height, width), got {size!r}") from None
    _validate(out, videos, frames, size, seed, difficulty, val_fraction, predictions, mp4)
    videos, frames, seed, val_fraction = int(videos), int(frames), int(seed), float(val_fraction)
    n_val = min(videos, max(1, round(videos * val_fraction))) if val_fraction > 0 else 0
    splits = ["train"] * (videos - n_val) + ["val"] * n_val
    gt: dict[str, list[VideoAnnotation]] = {"train": [], "val": []}
    pred_videos: list[VideoAnnotation] = []
    coco_splits = {k: CocoSplit(v) for k, v in SPLITS.items()} if coco else {}
    entries = []
    try:
        with atomic_directory(out) as tmp:
            for index, split in enumerate(splits):
                ann, pred_segments, entry = _video(
                    tmp,
                    index,
                    split,
                    seed=seed,
                    frames=frames,
                    size=size,
                    difficulty=difficulty,
                    predictions=predictions,
                    mp4=mp4,
                    coco=coco_splits.get(split),
                )
                gt[split].append(ann)
                entries.append(entry)
                if pred_segments is not None:
                    pred_videos.append(VideoAnnotation(ann.video_id, ann.frames, pred_segments))
            root = tmp / "VIPSeg"
            for split in ("train", "val"):
                ids = [v.video_id for v in gt[split]]
                write_panoptic_video_json(
                    root / f"panoptic_gt_VIPSeg_{split}.json",
                    PanopticVideoDataset(gt[split], list(CATEGORIES)),
                )
                write_split(root / f"{split}.txt", ids)
                write_split(tmp / "VSPW" / f"{split}.txt", ids)
            (root / "panoVIPSeg_categories.json").write_text(
                json.dumps([c.to_json() for c in CATEGORIES]) + "\n", encoding="utf-8"
            )
            if coco:
                write_coco_jsons(tmp / COCO_DIR, list(coco_splits.values()), coco_categories(CATEGORIES))
            if predictions == "noisy":
                write_panoptic_video_json(
                    tmp / "pred/pred.json", PanopticVideoDataset(pred_videos), with_videos=False
                )
            manifest = {
                "generator": GENERATOR,
                "version": VERSION,
                "seed": seed,
                "videos": videos,
                "frames": frames,
                "size": list(size),
                "difficulty": difficulty,
                "val_fraction": val_fraction,
                "predictions": predictions,
                "mp4": mp4,
                "coco": coco,
                "categories": [c.to_json() for c in CATEGORIES],
                "scenes": entries,
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
            # mkdtemp creates the directory 0700; give the result ordinary permissions.
            os.chmod(tmp, 0o755)
    except OSError as exc:
        # The temporary tree is gone and out_dir untouched (atomic_directory cleans up).
        raise InputError(f"cannot write the output ({exc})", path=out) from None
    ds = _dataset(out, [v.video_id for v in gt["train"]], [v.video_id for v in gt["val"]], predictions, mp4)
    ds.coco_root = out / COCO_DIR if coco else None
    return ds


def _dataset(
    out: Path, train: list[str], val: list[str], predictions: str | None, mp4: bool
) -> SyntheticDataset:
    root = out / "VIPSeg"
    noisy = predictions == "noisy"
    return SyntheticDataset(
        root=out,
        vipseg_root=root,
        images=root / "images",
        panomasks=root / "panomasks",
        gt_masks=root / "panomasksRGB",
        gt_json_train=root / "panoptic_gt_VIPSeg_train.json",
        gt_json_val=root / "panoptic_gt_VIPSeg_val.json",
        categories_path=root / "panoVIPSeg_categories.json",
        vspw_root=out / "VSPW",
        manifest=out / "manifest.json",
        train_videos=train,
        val_videos=val,
        pred_json=out / "pred/pred.json" if noisy else None,
        pred_masks=out / "pred/pan_pred" if noisy else None,
        vss_pred=out / "vss_pred" if noisy else None,
        mp4_dir=out / "videos" if mp4 else None,
    )
