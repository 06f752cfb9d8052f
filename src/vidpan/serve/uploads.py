"""What reaches ``vidpan serve`` from a browser: the uploaded video, optional ground truth, the sample.

Everything here is checked before the model runs, and every problem is an
:class:`~vidpan.errors.InputError` with a one-line message the page shows as is:

- :func:`check_video`: a real video file (decodable by PyAV), within the size and length limits;
- :func:`read_ground_truth`: a ``.zip`` in the VIPSeg format (one ``panoptic_gt*.json`` and the
  RGB-id PNGs under ``.../<video_id>/<file_name>``) for the uploaded video; its frames are matched
  to the video's by position (the page names prediction frames ``00000000``, ``00000001``, ...)
  and written under the run directory in the layout :func:`vidpan.evaluation.evaluate_vps` reads;
- :func:`sample_video`: a small synthetic video (and its ground truth as such a zip), generated
  on first use with :func:`vidpan.data.synthetic.generate` from a seed the shipped model never saw.
"""

from __future__ import annotations

import shutil
import threading
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from vidpan.data.formats.vipseg import (
    PanopticVideoDataset,
    parse_panoptic_video_json,
    read_panoptic_video_json,
    write_panoptic_video_json,
)
from vidpan.errors import InputError
from vidpan.inference.video_io import VideoSource, open_video

SAMPLE_SEED = 1234  # the demo's held-out seed: the shipped model was trained on 0, scored on 1
SAMPLE_FRAMES = 16
SAMPLE_SIZE = (128, 224)  # (H, W)
_sample_lock = threading.Lock()


@dataclass(frozen=True)
class Limits:
    """What an upload may be (``vidpan serve --max-upload-mb / --max-frames``)."""

    max_megabytes: float = 50.0
    max_frames: int = 300
    max_gt_megabytes: float = 200.0  # uncompressed size of a ground-truth zip


@dataclass(frozen=True)
class GroundTruth:
    """A ground truth ready for :func:`vidpan.evaluation.evaluate_vps` (frames named by position)."""

    json: Path
    masks: Path  # <masks>/<video name>/<00000000>.png


@dataclass(frozen=True)
class Sample:
    video: Path
    ground_truth: Path  # a VIPSeg-format zip, as a user would upload


def check_video(path: str | Path | None, limits: Limits) -> VideoSource:
    """Open an uploaded video, refusing what is not a video or exceeds the limits."""
    if path is None or not str(path):
        raise InputError("no video: upload a video file or pick the sample")
    path = Path(path)
    if not path.is_file():
        raise InputError("the upload is not a file", path=path.name)
    megabytes = path.stat().st_size / 2**20
    if megabytes > limits.max_megabytes:
        raise InputError(
            f"the file is too large: {megabytes:.1f} MB, the limit is {limits.max_megabytes:g} MB",
            path=path.name,
        )
    try:
        source = open_video(path)
    except InputError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise InputError(f"not a video this page can read ({reason})", path=path.name) from None
    if source.num_frames > limits.max_frames:
        raise InputError(
            f"the video is too long: {source.num_frames} frames, the limit is {limits.max_frames}",
            path=path.name,
        )
    return source


def _member_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise InputError(f"unsafe path {name!r} in the ground-truth zip")
    return path


def read_ground_truth(
    path: str | Path, *, video_name: str, num_frames: int, dest: Path, limits: Limits
) -> GroundTruth:
    """Read a VIPSeg-format ground-truth zip for one video into ``dest`` (see the module docstring).

    The JSON may hold several videos: the one named like the uploaded video is used, else the
    only one. Its annotated frames must be the video's frames, in order (same count).
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise InputError(
            "ground truth: expected a .zip (VIPSeg JSON + RGB-id PNGs)", path=path.name
        ) from None
    with archive:
        members = {str(_member_path(i.filename)): i for i in archive.infolist() if not i.is_dir()}
        total = sum(i.file_size for i in members.values()) / 2**20
        if total > limits.max_gt_megabytes:
            raise InputError(
                f"ground truth: {total:.0f} MB uncompressed, the limit is {limits.max_gt_megabytes:g} MB"
            )
        jsons = sorted(
            n for n in members if n.endswith(".json") and not PurePosixPath(n).name.startswith(".")
        )
        if len(jsons) > 1:
            jsons = [n for n in jsons if PurePosixPath(n).name.startswith("panoptic_gt")] or jsons
        if len(jsons) != 1:
            raise InputError(
                f"ground truth: expected one VIPSeg JSON (panoptic_gt*.json) in the zip, found {len(jsons) or 'none'}",
                path=path.name,
            )
        import json

        try:
            raw = json.loads(archive.read(members[jsons[0]]))
        except (ValueError, UnicodeDecodeError):
            raise InputError("ground truth: the JSON is not valid JSON", path=jsons[0]) from None
        dataset = parse_panoptic_video_json(raw, path=jsons[0], require_videos=True)
        if not dataset.categories:
            raise InputError("ground truth: the JSON lists no categories", path=jsons[0])
        by_id = dataset.video_map()
        if video_name in by_id:
            video = by_id[video_name]
        elif len(dataset.videos) == 1:
            video = dataset.videos[0]
        else:
            raise InputError(
                f"ground truth: {len(dataset.videos)} videos and none named {video_name!r}", path=jsons[0]
            )
        if len(video.frames) != num_frames:
            raise InputError(
                f"ground truth: {len(video.frames)} annotated frames for a video of {num_frames} frames "
                "(the page matches them by position: annotate every frame)",
                path=jsons[0],
            )
        by_suffix: dict[str, str] = {}  # '<video>/<file>' -> member
        for name in members:
            parts = PurePosixPath(name).parts
            if len(parts) >= 2:
                by_suffix.setdefault("/".join(parts[-2:]), name)
        masks = dest / "panomasksRGB" / video_name
        masks.mkdir(parents=True, exist_ok=True)
        frames = []
        for i, frame in enumerate(video.frames):
            member = by_suffix.get(f"{video.video_id}/{frame.file_name}")
            if member is None:
                raise InputError(f"ground truth: mask {video.video_id}/{frame.file_name} is not in the zip")
            stem = f"{i:08d}"
            with archive.open(members[member]) as src, open(masks / f"{stem}.png", "wb") as dst:
                shutil.copyfileobj(src, dst)
            frames.append(replace(frame, id=stem, file_name=f"{stem}.png"))
    renamed = replace(video, video_id=video_name, frames=frames)
    gt_json = dest / "gt.json"
    write_panoptic_video_json(gt_json, PanopticVideoDataset([renamed], dataset.categories))
    return GroundTruth(json=gt_json, masks=dest / "panomasksRGB")


def sample_video(root: Path, *, frames: int = SAMPLE_FRAMES, size: tuple[int, int] = SAMPLE_SIZE) -> Sample:
    """The sample video and its ground-truth zip under ``root/sample`` (generated once)."""
    from vidpan.data.synthetic import generate

    out = root / "sample"
    sample = Sample(video=out / "sample.mp4", ground_truth=out / "sample_gt.zip")
    with _sample_lock:
        if sample.video.is_file() and sample.ground_truth.is_file():
            return sample
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        data = generate(out / "synthetic", videos=1, frames=frames, size=size,
                        seed=SAMPLE_SEED, val_fraction=1.0, mp4=True)  # fmt: skip
        assert data.mp4_dir is not None
        (video_id,) = data.val_videos
        gt = read_panoptic_video_json(data.gt_json_val)
        partial = sample.ground_truth.with_suffix(".zip.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(data.gt_json_val, "panoptic_gt_VIPSeg_val.json")
            for frame in gt.video_map()[video_id].frames:
                archive.write(
                    data.gt_masks / video_id / frame.file_name, f"panomasksRGB/{video_id}/{frame.file_name}"
                )
        partial.rename(sample.ground_truth)
        shutil.copyfile(data.mp4_dir / f"{video_id}.mp4", out / "sample.mp4.partial")
        (out / "sample.mp4.partial").rename(sample.video)
        shutil.rmtree(out / "synthetic", ignore_errors=True)
    return sample
