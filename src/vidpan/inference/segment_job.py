"""Segment videos into one output directory: the library function behind ``vidpan segment``.

:func:`load_segmenter` loads a model once (weights, config, categories, predictor);
:func:`segment_to_dir` runs it on a list of inputs and writes every output of the chosen task into
one directory, assembled under a temporary name and renamed at the end (``OutputDirectory``).
:func:`open_inputs` validates the inputs first, before the model loads. The command line, batch runs (one call per video, model loaded once per worker) and Python users
call the same two functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vidpan.config import Config, save_yaml
from vidpan.data.categories import CategoryMapping
from vidpan.errors import InputError
from vidpan.inference.output import FrameWriter, OutputDirectory
from vidpan.inference.predictor import Mode, Precision, Task, VideoPredictor
from vidpan.inference.video_io import VideoSource, open_video
from vidpan.inference.writers import (
    FrameJSONWriter,
    OverlayVideoWriter,
    SemanticPNGWriter,
    VIPSegSubmissionWriter,
    YTVISResultsWriter,
)
from vidpan.models.convert import load_for_inference


@dataclass(frozen=True)
class SegmentOptions:
    """What ``vidpan segment`` was asked for (one model, one task)."""

    weights: str
    preset: str | None = None
    mode: Mode | None = None  # None: the model's config
    task: Task | None = None  # None: the model's config
    device: str = "cpu"
    precision: Precision = "fp32"
    categories: Path | None = None
    overrides: tuple[str, ...] = ()
    overlay: bool = False
    stream: bool = False
    progress: bool = False
    engine: str = "torch"  # torch | onnxruntime (exported segmenter + tracker step, vidpan.export)
    exported: Path | None = None  # --engine onnxruntime: the directory written by `vidpan export`


@dataclass
class LoadedSegmenter:
    """A model ready to run: its resolved config (task and mode filled in) and predictor."""

    config: Config
    predictor: VideoPredictor
    categories: CategoryMapping
    task: Task
    mode: Mode


@dataclass(frozen=True)
class VideoSummary:
    """One segmented video, as printed after it finishes."""

    name: str
    num_frames: int
    width: int
    height: int
    num_segments: int
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.num_frames / self.seconds if self.seconds else 0.0


@dataclass
class SegmentReport:
    """All videos written into one output directory."""

    out_dir: Path
    task: Task
    mode: Mode
    videos: list[VideoSummary] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return sum(v.num_frames for v in self.videos)

    @property
    def seconds(self) -> float:
        return sum(v.seconds for v in self.videos)


def load_segmenter(options: SegmentOptions) -> LoadedSegmenter:
    """Load weights, config and category names; errors in any of them are :class:`InputError`."""
    config, model = load_for_inference(
        options.weights, preset=options.preset, overrides=list(options.overrides)
    )
    categories = (
        CategoryMapping.from_file(options.categories)
        if options.categories
        else CategoryMapping.from_model_config(config.model)
    )
    if options.categories and categories.num_things != config.model.num_things:
        raise InputError(
            f"{categories.num_things} thing categories but the model has {config.model.num_things}",
            path=options.categories,
        )
    if options.engine == "onnxruntime":
        from vidpan.export.engine import use_exported

        model = use_exported(model, options.exported, weights=options.weights, device=options.device,
                             precision=options.precision)  # fmt: skip
    predictor = VideoPredictor(
        model, config, device=options.device, precision=options.precision, categories=categories
    )
    task = options.task or config.inference.task
    mode = options.mode or config.inference.mode
    resolved = dataclasses.replace(
        config, inference=dataclasses.replace(config.inference, task=task, mode=mode)
    )
    return LoadedSegmenter(config=resolved, predictor=predictor, categories=categories, task=task, mode=mode)


def task_writers(
    out: OutputDirectory, task: str, labels: CategoryMapping, *, overlay: bool
) -> list[FrameWriter]:
    """The writers of one task: ``frames.jsonl``, the task's submission files, the overlay video."""
    writers: list[FrameWriter] = [FrameJSONWriter(out, labels=labels)]
    if task == "vps":
        writers.append(VIPSegSubmissionWriter(out, labels=labels))
    elif task == "vss":
        writers.append(SemanticPNGWriter(out, labels=labels))
    else:
        writers.append(YTVISResultsWriter(out, labels=labels))
    if overlay:
        writers.append(OverlayVideoWriter(out, labels=labels))
    return writers


def open_inputs(inputs: Sequence[str | Path]) -> list[VideoSource]:
    """Open (and so validate) every input; two inputs with the same video name are refused,
    since their outputs would collide. Cheap: call it before loading the model."""
    sources = [open_video(path) for path in inputs]
    names = [s.name for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"several inputs have the same video name {duplicates}: outputs would collide")
    return sources


def segment_to_dir(
    loaded: LoadedSegmenter, sources: Sequence[VideoSource], out_dir: Path, options: SegmentOptions
) -> SegmentReport:
    """Segment opened ``sources`` (:func:`open_inputs`) into ``out_dir``."""
    report = SegmentReport(out_dir=out_dir, task=loaded.task, mode=loaded.mode)
    with OutputDirectory(out_dir) as out:
        writers = task_writers(out, loaded.task, loaded.categories, overlay=options.overlay)
        save_yaml(loaded.config, out.file("config.yaml"))
        for source in sources:
            prediction = loaded.predictor.predict(
                source,
                mode=loaded.mode,
                task=loaded.task,
                postprocess="stream" if options.stream else "video",
                writers=writers,
                keep_frames=False,
                progress=options.progress,
            )
            report.videos.append(
                VideoSummary(
                    name=prediction.name,
                    num_frames=prediction.num_frames,
                    width=prediction.width,
                    height=prediction.height,
                    num_segments=len(prediction.segments),
                    seconds=prediction.seconds,
                )
            )
    return report
