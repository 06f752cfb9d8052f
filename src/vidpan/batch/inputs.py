"""Resolve ``--video-list`` into the videos of a batch.

A list is one of:

- a text file: one video file or frame folder per line; blank lines and ``#`` comments are
  ignored; relative paths are relative to the list file's folder;
- a directory: its video files and its sub-folders that hold frame images (one level);
- a glob pattern (``data/**/*.mp4``, recursive ``**`` allowed).

The result is sorted by path and free of duplicates, so every process of a distributed run
sees the same list in the same order (torchrun shards it as ``videos[rank::world_size]``).
Videos are not opened here: a listed file that is missing or corrupt is a failure of that video,
recorded in the manifest, not of the batch. Two videos with the same name are refused, since
their output folders (``OUT/<name>/``) would collide.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from vidpan.errors import InputError
from vidpan.inference.video_io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class VideoItem:
    """One video of a batch: its output name (``OUT/<name>/``) and absolute input path."""

    name: str
    path: Path


def video_name(path: Path) -> str:
    """The output name of a video: the file stem, or the folder name (as ``open_video``)."""
    return path.name if path.is_dir() else path.stem


def _is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() for p in path.iterdir())


def _read_list_file(path: Path) -> list[Path]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the video list ({exc})", path=path) from None
    paths = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if entry:
            p = Path(entry).expanduser()
            paths.append(p if p.is_absolute() else path.parent / p)
    return paths


def _read_directory(path: Path) -> list[Path]:
    return [
        p
        for p in path.iterdir()
        if not p.name.startswith(".")
        and ((p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS) or _is_frame_folder(p))
    ]


def resolve_video_list(spec: str) -> list[VideoItem]:
    """The videos named by ``spec`` (a list file, a directory or a glob), sorted by path.

    Raises:
        InputError: ``spec`` matches nothing, the list is empty, or two videos share a name.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        paths = _read_list_file(path)
        where = "the video list file"
    elif path.is_dir():
        paths = _read_directory(path)
        where = "the directory (video files or folders of frames)"
    elif _GLOB_CHARS & set(spec):
        paths = [Path(p) for p in glob.glob(str(path), recursive=True)]
        where = "the glob pattern"
    else:
        raise InputError("no such video list file, directory or glob pattern", path=spec)
    unique = sorted({p.absolute() for p in paths}, key=str)
    if not unique:
        raise InputError(f"no videos in {where}", path=spec)
    items = [VideoItem(name=video_name(p), path=p) for p in unique]
    by_name: dict[str, list[Path]] = {}
    for item in items:
        by_name.setdefault(item.name, []).append(item.path)
    clashes = {n: ps for n, ps in by_name.items() if len(ps) > 1}
    if clashes:
        name, ps = sorted(clashes.items())[0]
        raise InputError(
            f"{len(clashes)} video name(s) are used twice, e.g. {name!r} by {ps[0]} and {ps[1]}: "
            "their output folders would collide",
            path=spec,
        )
    return items


def shard(items: list[VideoItem], rank: int, world_size: int) -> list[VideoItem]:
    """The videos of one rank: ``items[rank::world_size]`` of the sorted list."""
    return items[rank::world_size]
