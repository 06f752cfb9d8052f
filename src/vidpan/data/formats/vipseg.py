"""VIPSeg on-disk formats: raw panomasks, the COCO-video panoptic JSON, split lists, categories.

Follows ``reference/metrics_reference.md`` §1:

- raw panomasks ``panomasks/<video>/<frame>.png``: 16-bit, 0 = void, stuff = category + 1,
  thing = (category + 1) * 100 + k (1-based category, instance k stable across the video);
- ``panoptic_gt_VIPSeg_{train,val}.json``: ``videos`` (frame lists), ``annotations`` (per-frame
  ``segments_info``), ``categories`` (0-based ids with ``isthing`` and ``color``), with RGB-id PNGs
  in ``panomasksRGB/<video>/<frame>.png``;
- split lists ``train.txt`` / ``val.txt``: one video id per line, every line ending in ``\\n``
  (the official scripts strip the last character of every line).

:func:`convert_panomasks` is our own implementation of the official
``create_panoptic_video_labels.py`` + ``splitjson.py``: same per-video id consistency, same
segment order (ascending raw value, so stuff before things), area from the written PNG, thing
ids that never collide with stuff ids — but deterministic (seeded colours).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vidpan.data.formats.rgb_id import IdGenerator, encode_png, id2rgb
from vidpan.errors import InputError
from vidpan.utils.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

# ------------------------------------------------------------------------------------------
# Categories
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Category:
    """A dataset category (0-based ``id`` as in ``panoVIPSeg_categories.json``)."""

    id: int
    name: str
    isthing: bool
    color: tuple[int, int, int]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "isthing": int(self.isthing), "color": list(self.color)}


def parse_categories(data: Any, *, source: str | Path) -> list[Category]:
    """Parse a category list (``[{id, name, isthing, color}, ...]``), validating every field."""
    if not isinstance(data, list) or not data:
        raise InputError("categories: expected a non-empty list", path=source)
    out: list[Category] = []
    seen: set[int] = set()
    for i, c in enumerate(data):
        where = f"categories[{i}]"
        if not isinstance(c, dict):
            raise InputError(f"{where}: expected an object", path=source)
        if not isinstance(c.get("id"), int) or isinstance(c.get("id"), bool):
            raise InputError(f"{where}.id: expected an integer, got {c.get('id')!r}", path=source)
        if not isinstance(c.get("isthing"), (int, bool)):
            raise InputError(f"{where}.isthing: expected 0 or 1, got {c.get('isthing')!r}", path=source)
        color = c.get("color", [0, 0, 0])
        if not (isinstance(color, list) and len(color) == 3 and all(isinstance(v, int) for v in color)):
            raise InputError(f"{where}.color: expected [r, g, b], got {color!r}", path=source)
        if c["id"] in seen:
            raise InputError(f"{where}.id: duplicate category id {c['id']}", path=source)
        seen.add(c["id"])
        name = c.get("name", f"category_{c['id']}")
        out.append(Category(int(c["id"]), str(name), bool(c["isthing"]), (color[0], color[1], color[2])))
    return out


def read_categories(path: str | Path) -> list[Category]:
    """Read ``panoVIPSeg_categories.json`` (a list) or the ``categories`` of a panoptic JSON."""
    data = read_json(path)
    if isinstance(data, dict):
        if "categories" not in data:
            raise InputError("no `categories` key", path=path)
        data = data["categories"]
    return parse_categories(data, source=path)


# ------------------------------------------------------------------------------------------
# Raw panomasks
# ------------------------------------------------------------------------------------------


def raw_to_category(raw: np.ndarray) -> np.ndarray:
    """Raw panomask values -> 0-based category ids (-1 for void), as the official converter."""
    raw = raw.astype(np.int64)
    cat = np.where(raw < 125, raw, raw // 100) - 1
    return np.where(raw == 0, -1, cat)


def encode_raw(category: int, instance: int | None) -> int:
    """Raw panomask value of a stuff region (``instance=None``) or of thing instance ``instance``."""
    if instance is None:
        return category + 1
    if not 0 <= instance < 100:
        raise ValueError("thing instance numbers must lie in [0, 100)")
    value = (category + 1) * 100 + instance
    if value < 125:
        # The official decoder reads values below 125 as stuff: category 0 cannot be a thing.
        raise ValueError(f"thing category {category} cannot be encoded (raw value {value} < 125)")
    return value


def read_panomask(path: str | Path) -> np.ndarray:
    """Read a raw 16-bit panomask as [H, W] int32."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read PNG ({exc})", path=path) from None
    if arr.ndim != 2:
        raise InputError(f"expected a single-channel 16-bit panomask, got shape {arr.shape}", path=path)
    return arr.astype(np.int32)


def write_panomask(path: str | Path, raw: np.ndarray) -> None:
    """Write a raw panomask as a 16-bit PNG (atomically)."""
    if raw.min() < 0 or raw.max() > 65535:
        raise ValueError("raw panomask values must fit in 16 bits")
    atomic_write_bytes(path, encode_png(raw.astype(np.uint16)))


# ------------------------------------------------------------------------------------------
# Panoptic video JSON
# ------------------------------------------------------------------------------------------


@dataclass
class SegmentInfo:
    """One segment of one frame (``segments_info`` entry)."""

    id: int
    category_id: int
    iscrowd: int = 0
    area: int = 0
    bbox: tuple[int, int, int, int] | None = None  # x, y, w, h

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "category_id": self.category_id,
            "iscrowd": self.iscrowd,
            "area": self.area,
        }
        if self.bbox is not None:
            out["bbox"] = list(self.bbox)
        return out


@dataclass
class FrameInfo:
    """One frame of a video: its stem (``id``), PNG ``file_name`` and size."""

    id: str
    file_name: str
    width: int
    height: int


@dataclass
class VideoAnnotation:
    """All annotated frames of one video. ``frames[i]`` pairs with ``segments[i]``."""

    video_id: str
    frames: list[FrameInfo]
    segments: list[list[SegmentInfo]]


@dataclass
class PanopticVideoDataset:
    """A VIPSeg ``panoptic_gt_*.json`` (or a ``pred.json`` with only annotations)."""

    videos: list[VideoAnnotation]
    categories: list[Category] = field(default_factory=list)

    def video_map(self) -> dict[str, VideoAnnotation]:
        return {v.video_id: v for v in self.videos}

    def to_json(self, *, with_videos: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if with_videos:
            out["videos"] = [
                {
                    "video_id": v.video_id,
                    "images": [
                        {"id": f.id, "width": f.width, "height": f.height, "file_name": f.file_name}
                        for f in v.frames
                    ],
                }
                for v in self.videos
            ]
        out["annotations"] = [
            {
                "video_id": v.video_id,
                "annotations": [
                    {"image_id": f.id, "file_name": f.file_name, "segments_info": [s.to_json() for s in segs]}
                    for f, segs in zip(v.frames, v.segments, strict=True)
                ],
            }
            for v in self.videos
        ]
        if self.categories:
            out["categories"] = [c.to_json() for c in self.categories]
        return out


def read_json(path: str | Path) -> Any:
    """Read a JSON file; missing or malformed files raise :class:`InputError` naming the file."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", path=path
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read ({exc})", path=path) from None


def require_field(obj: Any, key: str, typ: type | tuple[type, ...], where: str, path: Path) -> Any:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected an object", path=path)
    if key not in obj:
        raise InputError(f"{where}: missing field `{key}`", path=path)
    value = obj[key]
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is int):
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise InputError(f"{where}.{key}: expected {names}, got {value!r:.60}", path=path)
    return value


def parse_segments(raw: Any, where: str, path: Path) -> list[SegmentInfo]:
    if not isinstance(raw, list):
        raise InputError(f"{where}: expected a list", path=path)
    segs = []
    for k, s in enumerate(raw):
        w = f"{where}[{k}]"
        seg_id = require_field(s, "id", int, w, path)
        cat = require_field(s, "category_id", int, w, path)
        iscrowd = s.get("iscrowd", 0)
        area = s.get("area", 0)
        bbox = s.get("bbox")
        if not isinstance(iscrowd, int) or not isinstance(area, (int, float)):
            raise InputError(f"{w}: `iscrowd` and `area` must be numbers", path=path)
        segs.append(
            SegmentInfo(
                seg_id,
                cat,
                int(iscrowd),
                int(area),
                tuple(int(v) for v in bbox) if bbox else None,  # type: ignore[arg-type]
            )
        )
    return segs


def parse_panoptic_video_json(
    data: Any, *, path: str | Path, require_videos: bool = True
) -> PanopticVideoDataset:
    """Validate and parse a panoptic video JSON (GT with ``videos``, or a pred with annotations only).

    Frames are paired by list position, as the official evaluators do; for a prediction without
    ``videos`` the frame list is taken from its annotations' ``file_name`` / ``image_id``.
    """
    path = Path(path)
    if not isinstance(data, dict):
        raise InputError("top level: expected an object", path=path)
    anns = require_field(data, "annotations", list, "top level", path)
    frames_by_video: dict[str, list[FrameInfo]] = {}
    if require_videos or "videos" in data:
        videos = require_field(data, "videos", list, "top level", path)
        for i, v in enumerate(videos):
            vid = str(require_field(v, "video_id", (str, int), f"videos[{i}]", path))
            images = require_field(v, "images", list, f"videos[{i}]", path)
            frames = []
            for j, im in enumerate(images):
                w = f"videos[{i}].images[{j}]"
                fname = require_field(im, "file_name", str, w, path)
                frames.append(
                    FrameInfo(
                        str(im.get("id", Path(fname).stem)),
                        fname,
                        int(require_field(im, "width", int, w, path)),
                        int(require_field(im, "height", int, w, path)),
                    )
                )
            if vid in frames_by_video:
                raise InputError(f"videos[{i}].video_id: duplicate video {vid!r}", path=path)
            frames_by_video[vid] = frames
    out: list[VideoAnnotation] = []
    seen: set[str] = set()
    for i, a in enumerate(anns):
        vid = str(require_field(a, "video_id", (str, int), f"annotations[{i}]", path))
        if vid in seen:
            raise InputError(f"annotations[{i}].video_id: duplicate video {vid!r}", path=path)
        seen.add(vid)
        frame_anns = require_field(a, "annotations", list, f"annotations[{i}]", path)
        segments = [
            parse_segments(
                require_field(fa, "segments_info", list, f"annotations[{i}].annotations[{j}]", path),
                f"annotations[{i}].annotations[{j}].segments_info",
                path,
            )
            for j, fa in enumerate(frame_anns)
        ]
        if vid in frames_by_video:
            frames = frames_by_video[vid]
            if len(frames) != len(segments):
                raise InputError(
                    f"annotations[{i}] (video {vid!r}): {len(segments)} annotated frames but "
                    f"`videos` lists {len(frames)} images",
                    path=path,
                )
        elif require_videos:
            raise InputError(f"annotations[{i}]: video {vid!r} is not listed in `videos`", path=path)
        else:
            frames = []
            for j, fa in enumerate(frame_anns):
                fname = fa.get("file_name") if isinstance(fa, dict) else None
                stem = str(fa.get("image_id", Path(str(fname)).stem)) if isinstance(fa, dict) else str(j)
                frames.append(FrameInfo(stem, str(fname) if fname else f"{stem}.png", 0, 0))
        out.append(VideoAnnotation(vid, frames, segments))
    missing = [vid for vid in frames_by_video if vid not in seen]
    if missing:
        raise InputError(f"videos {missing[:5]} are listed in `videos` but have no `annotations`", path=path)
    categories = parse_categories(data["categories"], source=path) if "categories" in data else []
    return PanopticVideoDataset(out, categories)


def read_panoptic_video_json(path: str | Path, *, require_videos: bool = True) -> PanopticVideoDataset:
    """Read and validate a VIPSeg panoptic video JSON (GT or prediction)."""
    return parse_panoptic_video_json(read_json(path), path=path, require_videos=require_videos)


def write_panoptic_video_json(
    path: str | Path, dataset: PanopticVideoDataset, *, with_videos: bool = True
) -> None:
    """Write a panoptic video JSON atomically (``with_videos=False`` for a ``pred.json``)."""
    atomic_write_json(path, dataset.to_json(with_videos=with_videos), indent=None)


# ------------------------------------------------------------------------------------------
# Split lists
# ------------------------------------------------------------------------------------------


def read_split(path: str | Path) -> list[str]:
    """Read a split list (one video id per line; blank lines ignored)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("split list not found", path=path) from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def write_split(path: str | Path, video_ids: Iterable[str]) -> None:
    """Write a split list; every line, including the last, ends in ``\\n`` (the official scripts
    drop the last character of each line)."""
    atomic_write_text(path, "".join(f"{v}\n" for v in video_ids))


# ------------------------------------------------------------------------------------------
# Official conversion: raw panomasks -> RGB-id PNGs + JSON
# ------------------------------------------------------------------------------------------


def natural_key(name: str) -> list[Any]:
    """Sort key ordering ``frame2`` before ``frame10``."""
    import re

    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def list_frames(directory: Path, suffix: str) -> list[Path]:
    """Frame files of a video directory, in the official ``sorted(os.listdir)`` order."""
    return sorted(p for p in directory.iterdir() if p.suffix.lower() == suffix)


def convert_video(
    raw_frames: Sequence[np.ndarray],
    categories: Sequence[Category],
    *,
    seed: int = 0,
) -> tuple[list[np.ndarray], list[list[SegmentInfo]]]:
    """Convert one video's raw panomasks to id maps + ``segments_info`` (official semantics).

    A fresh :class:`IdGenerator` per video; the same raw value keeps its id for the whole video;
    per frame, segments in ascending raw value order; area = pixel count.
    """
    cats = {c.id: c for c in categories}
    gen = IdGenerator({c.id: (c.isthing, c.color) for c in categories}, seed=seed)
    raw_to_id: dict[int, int] = {}
    id_maps: list[np.ndarray] = []
    frame_segments: list[list[SegmentInfo]] = []
    for raw in raw_frames:
        values, inverse, counts = np.unique(raw, return_inverse=True, return_counts=True)
        lut = np.zeros(len(values), dtype=np.uint32)
        segs: list[SegmentInfo] = []
        for k, (value, count) in enumerate(zip(values.tolist(), counts.tolist(), strict=True)):
            if value == 0:
                continue
            cat = int(raw_to_category(np.array(value)))
            if cat not in cats:
                raise InputError(f"raw value {value} decodes to unknown category {cat}")
            if value not in raw_to_id:
                raw_to_id[value] = gen.get_id(cat)
            lut[k] = raw_to_id[value]
            segs.append(SegmentInfo(raw_to_id[value], cat, 0, int(count)))
        id_maps.append(lut[inverse.reshape(raw.shape)])
        frame_segments.append(segs)
    return id_maps, frame_segments


def convert_panomasks(
    root: str | Path,
    categories: Sequence[Category],
    *,
    out_masks: str | Path | None = None,
    out_json: str | Path | None = None,
    video_ids: Sequence[str] | None = None,
    seed: int = 0,
) -> PanopticVideoDataset:
    """Convert ``<root>/panomasks`` to ``panomasksRGB`` PNGs and a panoptic video JSON.

    Args:
        root: a VIPSeg root holding ``panomasks/<video>/<frame>.png``.
        categories: the dataset categories.
        out_masks: where to write ``<video>/<frame>.png`` RGB-id PNGs (default ``root/panomasksRGB``).
        out_json: the JSON to write (default ``root/panoptic_gt_VIPSeg.json``).
        video_ids: restrict to these videos (a split); default all, sorted.
        seed: colour seed (video i uses ``seed + i``).
    """
    root = Path(root)
    mask_root = root / "panomasks"
    if not mask_root.is_dir():
        raise InputError("no `panomasks` directory", path=root)
    out_masks = Path(out_masks) if out_masks is not None else root / "panomasksRGB"
    out_json = Path(out_json) if out_json is not None else root / "panoptic_gt_VIPSeg.json"
    ids = (
        list(video_ids)
        if video_ids is not None
        else sorted(p.name for p in mask_root.iterdir() if p.is_dir())
    )
    videos: list[VideoAnnotation] = []
    for i, vid in enumerate(ids):
        vdir = mask_root / vid
        if not vdir.is_dir():
            raise InputError(f"video {vid!r} listed but has no panomask directory", path=vdir)
        paths = list_frames(vdir, ".png")
        if not paths:
            raise InputError("video has no frames", path=vdir)
        raws = [read_panomask(p) for p in paths]
        id_maps, segments = convert_video(raws, categories, seed=seed + i)
        frames = []
        for p, ids_map in zip(paths, id_maps, strict=True):
            atomic_write_bytes(out_masks / vid / p.name, encode_png(id2rgb(ids_map)))
            frames.append(FrameInfo(p.stem, p.name, int(ids_map.shape[1]), int(ids_map.shape[0])))
        videos.append(VideoAnnotation(vid, frames, segments))
    dataset = PanopticVideoDataset(videos, list(categories))
    write_panoptic_video_json(out_json, dataset)
    return dataset


def subset(dataset: PanopticVideoDataset, video_ids: Iterable[str]) -> PanopticVideoDataset:
    """The official ``splitjson.py``: keep the listed videos (in the dataset's order)."""
    keep = set(video_ids)
    return PanopticVideoDataset([v for v in dataset.videos if v.video_id in keep], dataset.categories)


def iter_video_frames(masks_root: str | Path, video: VideoAnnotation) -> Iterator[Path]:
    """Paths of a video's PNGs under ``masks_root/<video>/`` in annotation order."""
    for f in video.frames:
        yield Path(masks_root) / video.video_id / f.file_name
