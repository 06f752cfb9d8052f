"""``vidpan segment`` with several tasks or VSS from the panoptic output (seed paper §2.3, §4).

- ``--task vss --vss-from panoptic``: the VPS model's panoptic segments merged by class
  (:mod:`.vss_merge`), written as VSPW PNGs (``sem_pred/``), beside the default soft inference.
- ``--task vps,vss [--weights-vss B]``: both tasks on every input, the frozen ViT run once per
  frame (:mod:`.multitask`): the VPS model (``--weights``) and the VSS model (``--weights-vss``,
  default: the same model) share the backbone and each runs its adapter and heads. With
  ``--vss-from panoptic`` the VSS output is the VPS output merged by class (one model, one pass).

Outputs go to one ``--out``: ``pred.json`` + ``pan_pred/`` (VPS), ``sem_pred/`` (VSS),
``frames.jsonl`` and ``overlay/`` of the first task, ``config.yaml`` (the first model's config).

Inputs are those of ``vidpan segment`` (:func:`~vidpan.inference.segment_job.open_inputs`): files,
folders, ``-`` (stdin), URLs, capture devices, restricted to a :class:`~vidpan.inference.sources.Span`.
A file or folder is decoded by each task's reader (the first task reads the opened source, the
others reopen it; the ViT, the expensive part, runs once); a stream, which can be read once, is
decoded once and teed to every task (:mod:`vidpan.inference.tee`). ``stream=True`` decides and
writes each window as soon as it is processed (online / minvis), as for one task.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidpan.config import DEFAULT_MAX_INPUT_PIXELS, save_yaml
from vidpan.data.categories import CategoryMapping
from vidpan.errors import InputError
from vidpan.inference.array_source import ArrayVideoSource
from vidpan.inference.multitask import TaskRun, run_tasks, share_vit
from vidpan.inference.output import FrameWriter, OutputDirectory
from vidpan.inference.predictor import VideoPredictor
from vidpan.inference.segment_job import open_inputs
from vidpan.inference.sources import Span, open_source
from vidpan.inference.tee import tee
from vidpan.inference.video_io import VideoSource
from vidpan.inference.vss_merge import MergedSemanticPNGWriter
from vidpan.inference.writers import (
    FrameJSONWriter,
    OverlayVideoWriter,
    SemanticPNGWriter,
    VIPSegSubmissionWriter,
    YTVISResultsWriter,
)
from vidpan.models.convert import load_for_inference

TASKS = ("vps", "vss", "vis")
VSS_FROM = ("soft", "panoptic")


def parse_tasks(text: str) -> tuple[str, ...]:
    """``"vps"`` or ``"vps,vss"`` -> ("vps", "vss"); unknown or repeated tasks are errors."""
    tasks = tuple(t.strip() for t in text.split(","))
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise InputError(
            f"--task: expected one or more of {', '.join(TASKS)} separated by commas, got {text!r}"
        )
    if len(set(tasks)) != len(tasks):
        raise InputError(f"--task: a task is listed twice in {text!r}")
    return tasks


@dataclass
class _Task:
    desc: str  # what it produces, for the summary
    predictor: VideoPredictor
    writers: list[FrameWriter]
    run_as: str  # the predictor's task (vps for VSS from panoptic)


def _writers(out: OutputDirectory, task: str, vss_from: str, labels: CategoryMapping) -> list[FrameWriter]:
    if task == "vps":
        return [VIPSegSubmissionWriter(out, labels=labels)]
    if task == "vss":
        cls = MergedSemanticPNGWriter if vss_from == "panoptic" else SemanticPNGWriter
        return [cls(out, labels=labels)]
    return [YTVISResultsWriter(out, labels=labels)]


def _replayable(source: VideoSource) -> bool:
    return bool(getattr(source, "replayable", True))


def _readers(
    source: VideoSource, path: str, count: int, *, span: Span | None, max_pixels: int
) -> list[VideoSource]:
    """One video per task: ``source`` for the first and a reopened copy for the others (a file
    or folder), or views of one decode (a stream read once)."""
    if not _replayable(source):
        return list(tee(source, count))
    return [source] + [open_source(path, span=span, max_pixels=max_pixels) for _ in range(count - 1)]


def segment_tasks(
    inputs: Sequence[str],
    *,
    weights: str,
    tasks: Sequence[str],
    out_dir: Path,
    weights_vss: str | None = None,
    vss_from: str = "soft",
    preset: str | None = None,
    mode: str | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    categories: Path | None = None,
    overrides: Sequence[str] = (),
    overlay: bool = False,
    progress: bool = False,
    overwrite: bool = False,
    span: Span | None = None,
    stream: bool = False,
    max_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
) -> list[str]:
    """Segment ``inputs`` for every task of ``tasks``; returns one summary line per video and task.
    ``overwrite`` allows replacing vidpan's own earlier outputs in ``out_dir``; ``span`` selects a
    part of every input (``--start/--end/--max-frames/--fps``); ``stream`` decides every window at
    once (``--stream``); ``max_pixels`` refuses larger frames (``inference.max_input_pixels``)."""
    if vss_from not in VSS_FROM:
        raise InputError(f"--vss-from: expected soft or panoptic, got {vss_from!r}")
    if vss_from == "panoptic" and "vss" not in tasks:
        raise InputError("--vss-from panoptic is an option of the vss task (--task vss or --task vps,vss)")
    if weights_vss is not None and not ("vss" in tasks and len(tasks) > 1):
        raise InputError("--weights-vss names the VSS model of a multi-task run: use --task vps,vss")
    if weights_vss is not None and vss_from == "panoptic":
        raise InputError("--vss-from panoptic takes VSS from the VPS model: drop --weights-vss")
    sources = open_inputs(inputs, max_pixels=max_pixels, span=span)  # before the model loads
    config, model = load_for_inference(weights, preset=preset, overrides=overrides)
    labels = (
        CategoryMapping.from_file(categories)
        if categories
        else CategoryMapping.from_model_config(config.model)
    )
    if categories and labels.num_things != config.model.num_things:
        raise InputError(
            f"{labels.num_things} thing categories but the model has {config.model.num_things}",
            path=categories,
        )
    run_mode = mode or config.inference.mode
    # Which tasks need their own model pass: VSS from panoptic rides on the VPS pass (or is one).
    passes = [t for t in tasks if not (t == "vss" and vss_from == "panoptic" and "vps" in tasks)]
    # One model per pass: the first pass uses --weights, the vss pass --weights-vss when given,
    # every other pass a copy of the first model (each predictor needs its own model object).
    configs, models = [config], [model]
    for task in passes[1:]:
        if task == "vss" and weights_vss is not None:
            vcfg, vmodel = load_for_inference(weights_vss, preset=preset, overrides=overrides)
        else:
            vcfg, vmodel = config, copy.deepcopy(model)
        configs.append(vcfg)
        models.append(vmodel)
    summaries: list[str] = []
    # Files and folders (a stream read once holds no path an output could overwrite).
    paths = [s.path for s in sources if not isinstance(s, ArrayVideoSource) and _replayable(s)]
    with OutputDirectory(out_dir, overwrite=overwrite, inputs=paths) as out:
        runs: list[_Task] = []
        for k, task in enumerate(passes):
            predictor = VideoPredictor(models[k], configs[k], device=device, precision=precision,  # type: ignore[arg-type]
                                       categories=labels)  # fmt: skip
            writers = _writers(out, task, vss_from, labels)
            desc = task
            if task == "vps" and vss_from == "panoptic" and "vss" in tasks:
                writers += _writers(out, "vss", vss_from, labels)
                desc = "vps + vss from panoptic"
            run_as = "vps" if (task == "vss" and vss_from == "panoptic") else task
            if run_as != task:
                desc = "vss from panoptic"
            runs.append(_Task(desc, predictor, writers, run_as))
        runs[0].writers.insert(0, FrameJSONWriter(out, labels=labels, sources=sources))
        if overlay:
            runs[0].writers.append(OverlayVideoWriter(out, labels=labels))
        resolved = dataclasses.replace(
            config,
            inference=dataclasses.replace(config.inference, task=runs[0].run_as, mode=run_mode),  # type: ignore[arg-type]
        )
        save_yaml(resolved, out.file("config.yaml"))
        shared = share_vit(models, configs) if len(runs) > 1 else None
        for source, path in zip(sources, inputs, strict=True):
            options: list[dict[str, Any]] = [
                {
                    "mode": run_mode,
                    "task": r.run_as,
                    "writers": r.writers,
                    "keep_frames": False,
                    "progress": progress,
                    "postprocess": "stream" if stream else "video",
                }
                for r in runs
            ]
            if shared is None:
                predictions: list[Any] = [runs[0].predictor.predict(source, **options[0])]
            else:
                videos = _readers(source, path, len(runs), span=span, max_pixels=max_pixels)
                predictions = run_tasks(
                    shared,
                    [TaskRun(r.predictor, o, v) for r, o, v in zip(runs, options, videos, strict=True)],
                )
            for r, p in zip(runs, predictions, strict=True):
                summaries.append(
                    f"{p.name}: {p.num_frames} frames {p.width}x{p.height}, {r.desc}, "
                    f"{len(p.segments)} segments, {p.frames_per_second:.2f} frames/s ({run_mode})"
                )
    return summaries
