"""Which prediction PNG is scored against which GT frame, and one-line reasons when none is.

The pairing rules are the official ones (GT order, the i-th GT frame with the i-th prediction
frame, prediction PNG ``<pred_masks>/<video>/<GT file_name>``) plus vidpan's documented fallback
for VPS (the ``file_name`` the prediction JSON lists at the same position). They are resolved
here, for every video, before any pixel is read, so that a submission that cannot pair fails
at once with one line naming the video, the frames and the reason -- not with a bare
"file not found" on the first missing PNG after minutes of work.

The usual cause is a prediction made from a video *file* (frames named by index, 00000000,
00000001, ...) scored against VIPSeg / VSPW GT, whose frames keep their source names (VIPSeg
annotates every 5th source frame: 00000000, 00000005, ...). The messages say so when the names
look like that. Nothing here changes which PNGs are scored when pairing succeeds.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from vidpan.data.formats.vipseg import VideoAnnotation
from vidpan.errors import InputError

#: How many names a message lists.
LISTED = 5


def listing(names: Sequence[str], limit: int = LISTED) -> str:
    """``a, b, c`` or ``a, b, c, d, e, ... (first 5 of 12 listed)``."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... (first {limit} of {len(names)} listed)"


def _span(names: Sequence[str]) -> str:
    """``00000000.png..00000020.png`` (first..last), or the one name, or ``none``."""
    if not names:
        return "none"
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


def _is_index_naming(names: Sequence[str]) -> bool:
    """Names are consecutive integers from 0 or 1 (what a video file's frames are named)."""
    stems = [_stem(n) for n in names]
    if not stems or not all(s.isdigit() for s in stems):
        return False
    values = [int(s) for s in stems]
    return values == list(range(values[0], values[0] + len(values))) and values[0] in (0, 1)


def naming_hint(gt_names: Sequence[str], pred_names: Sequence[str], *, source: str, task: str) -> str:
    """``; prediction frames are named by index ...`` when that explains a failed pairing, else ``""``.

    Args:
        gt_names, pred_names: the video's frame names on each side.
        source: where the frames with the GT names are, for the advice (e.g. ``images/<video>``).
        task: ``vps`` or ``vss`` (the ``vidpan eval`` subcommand whose help explains pairing).
    """
    if _is_index_naming(pred_names) and not _is_index_naming(gt_names):
        return (
            f"; prediction frames are named by index ({_span(list(pred_names))}), the GT keeps its "
            f"source frame names: segment the frame folder ({source}) instead of a video file, so "
            f"the outputs keep the frame names (see `vidpan eval {task} --help`)"
        )
    return ""


def missing_video_message(video: str, pred_videos: Collection[str], *, what: str) -> str:
    """``video 'x' of the GT is missing from the prediction (...)``: which videos it has instead.

    Args:
        video: the GT video id.
        pred_videos: the prediction's video ids (or folder names).
        what: ``pred.json`` or a folder, naming where ``pred_videos`` come from.
    """
    if not pred_videos:
        return f"video {video!r} of the GT is missing from the prediction ({what} has no videos)"
    others = sorted(pred_videos)
    return (
        f"video {video!r} of the GT is missing from the prediction ({what} has "
        f"{len(others)} other videos: {listing([repr(v) for v in others])}; names must equal the "
        "GT video ids)"
    )


def _pngs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".png") if folder.is_dir() else []


def _holds(folder: Path) -> str:
    if not folder.is_dir():
        return "the folder does not exist"
    names = _pngs(folder)
    return f"the folder holds {len(names)} PNGs ({_span(names)})" if names else "the folder holds no PNGs"


def pair_vps_frames(
    gt: VideoAnnotation, pred: VideoAnnotation, *, pred_masks: Path, pred_json: Path
) -> list[Path]:
    """The prediction PNG of every GT frame of one video, in GT order.

    Frames pair by position; frame i's PNG is ``<pred_masks>/<video>/<GT file_name>`` if it
    exists, else the ``file_name`` the prediction JSON lists at position i.

    Raises:
        InputError: one line saying which frames cannot pair and why: a frame-count mismatch, a
            prediction JSON listing GT frame names in another order, or GT frames with no PNG.
    """
    vid = gt.video_id
    folder = pred_masks / vid
    gt_names = [f.file_name for f in gt.frames]
    pred_names = [f.file_name for f in pred.frames]
    hint = naming_hint(gt_names, pred_names, source=f"images/{vid}", task="vps")
    if len(pred.segments) != len(gt.segments):
        missing = [n for n in gt_names if _stem(n) not in {_stem(p) for p in pred_names}]
        detail = f"; GT frames not in the prediction: {listing(missing)}" if missing and not hint else ""
        raise InputError(
            f"video {vid!r}: {len(pred.segments)} predicted frames but the GT has {len(gt.segments)} "
            f"(GT {_span(gt_names)}, prediction {_span(pred_names)}; frames pair by position, so "
            f"the counts must match){detail}{hint}",
            path=pred_json,
        )
    gt_stems = {_stem(n): i for i, n in enumerate(gt_names)}
    for i, name in enumerate(pred_names):
        j = gt_stems.get(_stem(name))
        if j is not None and j != i:
            raise InputError(
                f"video {vid!r}: prediction frame {i} is {name} but GT frame {i} is {gt_names[i]} "
                f"({name} is GT frame {j}); frames pair by position, so list them in the GT order",
                path=pred_json,
            )
    paths: list[Path] = []
    missing = []
    for i, gt_name in enumerate(gt_names):
        pred_name = pred_names[i] if i < len(pred_names) else ""
        own = folder / gt_name
        if not own.is_file() and pred_name:
            own = folder / pred_name
        if not own.is_file():
            missing.append(gt_name)
        paths.append(own)
    if missing:
        raise InputError(
            f"video {vid!r}: {len(missing)} of {len(gt_names)} GT frames have no prediction PNG "
            f"({listing(missing)}); looked for the GT file_name, then the file_name {pred_json.name} "
            f"lists at the same position ({_span(pred_names)}); {_holds(folder)}{hint}",
            path=folder,
        )
    return paths


def check_vss_frames(video: str, gt_names: Sequence[str], *, pred_masks: Path) -> None:
    """Every GT frame of one VSPW video has ``<pred_masks>/<video>/<GT frame name>``.

    Raises:
        InputError: one line naming the missing folder or frames, what the folder holds instead,
            and the likely cause.
    """
    folder = pred_masks / video
    if not folder.is_dir():
        others = sorted(p.name for p in pred_masks.iterdir() if p.is_dir())
        raise InputError(missing_video_message(video, others, what=str(pred_masks)), path=folder)
    have = set(_pngs(folder))
    missing = [n for n in gt_names if n not in have]
    if missing:
        hint = naming_hint(gt_names, sorted(have), source=f"data/{video}/origin", task="vss")
        raise InputError(
            f"video {video!r}: {len(missing)} of {len(gt_names)} GT frames have no prediction PNG "
            f"({listing(missing)}); prediction PNGs must be named after the GT frames; "
            f"{_holds(folder)}{hint}",
            path=folder,
        )
