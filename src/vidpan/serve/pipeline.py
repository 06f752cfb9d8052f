"""What ``vidpan serve`` does with one video, as plain functions (no Gradio, testable alone).

:func:`segment_for_page` segments a checked video through a predictor session
(:meth:`VideoPredictor.start`, frame by frame, reporting each stage's progress: segmenting,
deciding, writing) into the usual writers (the overlay video, the VIPSeg submission / VSPW PNGs /
YouTube-VIS results, per-frame JSON, the resolved config), and, while the frames stream past,
gathers per-track statistics with :class:`TrackCollector` (bounded memory: a few numbers and the
presence runs per track). Then:
the per-track table (:func:`table_rows`, also ``tracks.csv``), the track timeline
(:func:`timeline_figure`: tracks × frames, also ``timeline.png``), the scores against a ground
truth when one is given (:func:`vidpan.evaluation.evaluate_vps`, also ``scores.json``) and one
zip of all outputs (:func:`zip_directory`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vidpan.config import save_yaml
from vidpan.data.categories import CategoryMapping
from vidpan.errors import InputError
from vidpan.inference.interop import present_instances
from vidpan.inference.output import FrameResult, FrameWriter, OutputDirectory
from vidpan.inference.video_io import VideoSource
from vidpan.inference.visualize import id_color
from vidpan.inference.writers import (
    FrameJSONWriter,
    OverlayVideoWriter,
    SemanticPNGWriter,
    VIPSegSubmissionWriter,
    YTVISResultsWriter,
)
from vidpan.serve.uploads import GroundTruth
from vidpan.structures import InstanceFrame, PanopticFrame, SemanticFrame
from vidpan.utils.atomic import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from vidpan.inference.predictor import VideoPredictor

TABLE_HEADERS = ["id", "class", "thing", "first frame", "last frame", "frames present", "mean score"]
Progress = Callable[[str, int, int], None]  # (stage, frames done in it, frames in the video)
STAGES = {"segment": "segmenting", "decide": "deciding", "emit": "writing"}  # session stages


@dataclass
class TrackStats:
    """One track (a segment id; a class for semantic output) over the video."""

    id: int
    label: int  # model class
    isthing: bool
    first: int
    last: int
    frames: int = 0
    score_sum: float = 0.0
    scored: int = 0  # frames with a score (semantic output has none)
    runs: list[list[int]] = field(default_factory=list)  # [start, end] inclusive, frames present

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / self.scored if self.scored else None


class TrackCollector:
    """Per-track statistics of a video, from its frame results in order (:meth:`add`)."""

    def __init__(self) -> None:
        self.tracks: dict[int, TrackStats] = {}
        self.num_frames = 0

    def add(self, result: FrameResult) -> None:
        self.num_frames += 1
        present: list[tuple[int, int, bool, float | None]]  # (id, class, thing, score)
        if isinstance(result, PanopticFrame):
            present = [(s.id, s.category_id, s.isthing, s.score) for s in result.segments]
        elif isinstance(result, InstanceFrame):
            present = [(s.id, s.category_id, s.isthing, s.score) for _, s in present_instances(result)]
        elif isinstance(result, SemanticFrame):
            present = [(int(c) + 1, int(c), False, None) for c in np.unique(result.classes) if c >= 0]
        for sid, label, isthing, score in present:
            track = self.tracks.get(sid)
            if track is None:
                track = self.tracks[sid] = TrackStats(sid, label, isthing, result.index, result.index)
            track.last = result.index
            track.frames += 1
            if score is not None:
                track.score_sum += float(score)
                track.scored += 1
            if track.runs and track.runs[-1][1] == result.index - 1:
                track.runs[-1][1] = result.index
            else:
                track.runs.append([result.index, result.index])


def table_rows(tracks: list[TrackStats], labels: CategoryMapping) -> list[list[Any]]:
    """The per-track table (columns :data:`TABLE_HEADERS`), by first appearance then id."""
    rows = []
    for t in sorted(tracks, key=lambda t: (t.first, t.id)):
        score = t.mean_score
        rows.append([t.id, labels.name(t.label), "yes" if labels.isthing(t.label) else "no", t.first, t.last, t.frames,
                     None if score is None else round(score, 3)])  # fmt: skip
    return rows


def table_csv(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TABLE_HEADERS)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return buffer.getvalue()


def timeline_figure(tracks: list[TrackStats], num_frames: int, labels: CategoryMapping) -> Figure:
    """Tracks × frames: one row per track, a bar over the frames it is present in.

    Bars have the track's overlay colour (:func:`vidpan.inference.visualize.id_color`).
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, safe across threads

    ordered = sorted(tracks, key=lambda t: (t.first, t.id))
    height = min(0.8 + 0.28 * max(len(ordered), 1), 14.0)
    fig = Figure(figsize=(8.0, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for row, t in enumerate(ordered):
        color = tuple(c / 255 for c in id_color(t.id))
        ax.broken_barh([(s - 0.5, e - s + 1) for s, e in t.runs], (row - 0.4, 0.8), facecolors=color)
    ax.set_yticks(range(len(ordered)), [f"#{t.id} {labels.name(t.label)}" for t in ordered], fontsize=8)
    ax.set_ylim(len(ordered) - 0.5, -0.5)
    ax.set_xlim(-0.5, max(num_frames, 1) - 0.5)
    ax.set_xlabel("frame")
    ax.set_title(f"{len(ordered)} tracks over {num_frames} frames", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def zip_directory(directory: Path, path: Path) -> Path:
    """Zip every file under ``directory`` (paths relative to it) into ``path`` (atomically)."""
    partial = path.with_name(f".{path.name}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in directory.rglob("*") if p.is_file()):
            archive.write(file, file.relative_to(directory).as_posix())
    partial.replace(path)
    return path


def run_session(
    predictor: VideoPredictor,
    source: VideoSource,
    *,
    mode: str,
    task: str,
    writers: list[FrameWriter],
    collector: TrackCollector,
    progress: Progress | None = None,
    max_frames: int | None = None,
) -> int:
    """Feed ``source`` frame by frame to a predictor session; every decided frame goes to the
    writers and the collector. Returns the number of frames.

    Whole-video decisions (``offline``, ``online`` here) come at the end: the input frames for the
    overlay are then decoded again (uploads are files). ``max_frames`` stops a video that decodes
    to more frames than its header said.
    """
    total = source.num_frames
    counts: dict[str, int] = {}

    def hook(stage: str, frames: int) -> None:
        counts[stage] = counts.get(stage, 0) + frames
        if progress is not None and stage in STAGES:
            progress(stage, counts[stage], max(total, counts[stage]))

    mode_: Any = mode  # checked by the predictor (InputError)
    task_: Any = task
    # postprocess "video": the reference's whole-video decisions, as `vidpan segment` by default.
    # start() is annotated with StageProgress, but any (stage, frames) callable is a hook
    # (vidpan.inference.context.ProgressHook, what its docstring promises).
    hook_: Any = hook
    session = predictor.start(mode=mode_, task=task_, height=source.height, width=source.width,
                              postprocess="video", progress=hook_)  # fmt: skip
    for w in writers:
        w.begin_video(source.name, frame_names=source.frame_names, fps=source.fps)

    def emit(result: FrameResult, image: np.ndarray | None) -> None:
        for w in writers:
            w.write(result, image=image)
        collector.add(result)

    pending: dict[int, np.ndarray] = {}  # input frames not decided yet (a window or a chunk)
    with session:
        for index, frame in enumerate(source):
            if max_frames is not None and index >= max_frames:
                raise InputError(f"the video is too long: more than {max_frames} frames")
            if not session.decides_at_end:
                pending[index] = frame
            for result in session.step(frame):
                emit(result, pending.pop(result.index))
        replay = iter(source) if session.decides_at_end else None
        for result in session.close():
            emit(result, next(replay) if replay is not None else pending.pop(result.index))
    for w in writers:
        w.end_video()
    return collector.num_frames


@dataclass
class PageResult:
    """Everything the page shows for one video."""

    name: str
    mode: str
    task: str
    num_frames: int
    height: int
    width: int
    seconds: float
    outputs: Path  # the output directory (the zip holds the same files)
    overlay: Path
    tracks: list[TrackStats]
    rows: list[list[Any]]
    figure: Figure
    zip: Path
    scores: dict[str, float | None] | None = None


def segment_for_page(
    predictor: VideoPredictor,
    source: VideoSource,
    *,
    mode: str,
    task: str,
    run_dir: Path,
    ground_truth: GroundTruth | None = None,
    progress: Progress | None = None,
    max_frames: int | None = None,
) -> PageResult:
    """Segment ``source`` into ``run_dir/outputs`` and build the table, timeline, scores and zip."""
    if ground_truth is not None and task != "vps":
        raise InputError("scores against a ground truth are for the vps task (VIPSeg format)")
    mode_: Any = mode
    task_: Any = task
    labels = predictor.categories
    config = predictor.config
    resolved = dataclasses.replace(
        config, inference=dataclasses.replace(config.inference, task=task_, mode=mode_)
    )
    outputs = run_dir / "outputs"
    start = time.perf_counter()
    with OutputDirectory(outputs) as out:
        writers: list[FrameWriter] = [
            FrameJSONWriter(out, labels=labels),
            OverlayVideoWriter(out, labels=labels),
        ]
        if task == "vps":
            writers.append(VIPSegSubmissionWriter(out, labels=labels))
        elif task == "vss":
            writers.append(SemanticPNGWriter(out, labels=labels))
        else:
            writers.append(YTVISResultsWriter(out, labels=labels))
        save_yaml(resolved, out.file("config.yaml"))
        collector = TrackCollector()
        num_frames = run_session(predictor, source, mode=mode, task=task, writers=writers, collector=collector,
                                 progress=progress, max_frames=max_frames)  # fmt: skip
        tracks = list(collector.tracks.values())
        rows = table_rows(tracks, labels)
        atomic_write_text(out.file("tracks.csv"), table_csv(rows))
        figure = timeline_figure(tracks, num_frames, labels)
        figure.savefig(out.file("timeline.png"))
    scores = None
    if ground_truth is not None:
        from vidpan.evaluation import evaluate_vps

        scores = dict(
            evaluate_vps(
                ground_truth.json, ground_truth.masks, outputs / "pred.json", outputs / "pan_pred"
            ).to_json()
        )
        atomic_write_json(outputs / "scores.json", scores)
    seconds = time.perf_counter() - start
    archive = zip_directory(outputs, run_dir / f"vidpan_{source.name}.zip")
    return PageResult(
        name=source.name,
        mode=mode,
        task=task,
        num_frames=num_frames,
        height=source.height,
        width=source.width,
        seconds=seconds,
        outputs=outputs,
        overlay=outputs / "overlay" / f"{source.name}.mp4",
        tracks=tracks,
        rows=rows,
        figure=figure,
        zip=archive,
        scores=scores,
    )
