"""Segment videos into one output directory: the library function behind ``vidpan segment``.

:func:`load_segmenter` loads a model once (weights, config, categories, predictor);
:func:`segment_to_dir` runs it on a list of inputs and writes every output of the chosen task into
one directory, assembled in a hidden work folder and moved in at the end (``OutputDirectory``:
nothing vidpan did not write is ever replaced; an output holding an input is refused).
:func:`open_inputs` validates the inputs first, before the model loads. The command line, batch runs (one call per video, model loaded once per worker) and Python users
call the same two functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vidpan.config import DEFAULT_MAX_INPUT_PIXELS, Config, save_yaml
from vidpan.data.categories import CategoryMapping
from vidpan.errors import InputError
from vidpan.inference.array_source import ArrayVideoSource
from vidpan.inference.output import FrameWriter, OutputDirectory
from vidpan.inference.predictor import Mode, Precision, Task, VideoPredictor
from vidpan.inference.sources import Span, open_source
from vidpan.inference.video_io import VideoSource, check_frame_limit, frame_limit_applies
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
    overwrite: bool = False  # replace vidpan's own earlier outputs in the output folder
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
    timings: dict[str, float] = field(default_factory=dict)  # seconds per pipeline stage

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
    written: list[str] = field(default_factory=list)  # top-level names moved into out_dir
    # Videos that decoded to fewer frames than they declare (truncated downloads): name -> why.
    incomplete: dict[str, str] = field(default_factory=dict)

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
    out: OutputDirectory,
    task: str,
    labels: CategoryMapping,
    *,
    overlay: bool,
    sources: Sequence[VideoSource] = (),
) -> list[FrameWriter]:
    """The writers of one task: ``frames.jsonl`` (with the ``sources``' frame times), the task's
    submission files, the overlay video."""
    writers: list[FrameWriter] = [FrameJSONWriter(out, labels=labels, sources=sources)]
    if task == "vps":
        writers.append(VIPSegSubmissionWriter(out, labels=labels))
    elif task == "vss":
        writers.append(SemanticPNGWriter(out, labels=labels))
    else:
        writers.append(YTVISResultsWriter(out, labels=labels))
    if overlay:
        writers.append(OverlayVideoWriter(out, labels=labels))
    return writers


def max_pixels_override(overrides: Sequence[str]) -> int:
    """``inference.max_input_pixels`` as ``--set`` gives it (validated), else the default: the
    limit must apply when the inputs are opened, before the model (and its config) loads."""
    from vidpan.config import InferenceConfig, apply_overrides

    mine = [o for o in overrides if o.split("=", 1)[0].strip() == "inference.max_input_pixels"]
    if not mine:
        return DEFAULT_MAX_INPUT_PIXELS
    shifted = [o.split("=", 1)[0].strip().removeprefix("inference.") + "=" + o.split("=", 1)[1] for o in mine]
    try:
        return apply_overrides(InferenceConfig(), shifted).max_input_pixels
    except InputError as exc:
        raise InputError(f"inference.{exc}") from None


def open_inputs(
    inputs: Sequence[str | Path], *, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS, span: Span | None = None
) -> list[VideoSource]:
    """Open (and so validate) every input (``-`` = stdin, URLs and devices: :func:`open_source`),
    restricted to ``span``; two inputs with the same video name are refused,
    since their outputs would collide. Frames above ``max_pixels`` are refused from their
    headers. Cheap: call it before loading the model."""
    sources = [open_source(path, span=span, max_pixels=max_pixels) for path in inputs]
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
    limit = loaded.config.inference.max_input_pixels
    for source in sources:  # the model's own config may set a lower limit
        if limit and source.height * source.width > limit:
            raise InputError(
                f"frame size {source.width}x{source.height} is above the limit of {limit:,} pixels "
                "(inference.max_input_pixels)",
                path=source.path,
            )
    frame_limit = loaded.config.inference.max_frames
    if frame_limit_applies(loaded.mode, streaming=options.stream):
        for source in sources:  # refused from the header, before anything is written
            check_frame_limit(
                source.num_frames, frame_limit, mode=loaded.mode, path=source.path, declared=True
            )
    # Files and folders (not frames in memory, not streams read once: stdin, URLs, devices).
    inputs = [
        s.path for s in sources if not isinstance(s, ArrayVideoSource) and getattr(s, "replayable", True)
    ]
    with OutputDirectory(out_dir, overwrite=options.overwrite, inputs=inputs) as out:
        writers = task_writers(out, loaded.task, loaded.categories, overlay=options.overlay, sources=sources)
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
                    timings=dict(prediction.timings),
                )
            )
            if source.incomplete:
                report.incomplete[source.name] = f"{source.path}: {source.incomplete}"
        out.notes["incomplete"] = report.incomplete  # recorded in the output's manifest
    report.written = out.written
    return report
