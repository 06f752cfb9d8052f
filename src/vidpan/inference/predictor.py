"""Video inference: :class:`VideoPredictor` loads a model and runs videos through sessions.

The models are stateless (STYLE.md #6); a :class:`~vidpan.inference.session.Session` owns one
video's state. :meth:`VideoPredictor.start` opens a session for frame-by-frame use;
:meth:`VideoPredictor.predict` (and ``predictor(video)``) is a loop over one: it decodes the
video, steps the session frame by frame, and hands every decided frame, with its input image,
to streaming writers. Modes (one module each under :mod:`vidpan.inference.modes`):

``online``
    segmenter + referring tracker, window by window (``window_size`` frames, DVIS++
    ``TEST.WINDOW_SIZE``). With ``postprocess="video"`` (``predict``'s default) the VPS/VSS/VIS
    decisions are the reference's whole-video ones, taken after the last window; with
    ``postprocess="stream"`` each window is decided and emitted as soon as it is processed
    (class from the running mean of the tracker logits, ids stable per track slot).
``offline``
    segmenter + tracker + temporal refiner over the whole video at once, as DVIS++ (``exact``).
``long``
    the refiner over overlapping chunks (``chunk_length`` / ``chunk_overlap``) while the tracker
    carries its state over the whole video; memory bounded by the chunk length.
``minvis``
    segmenter only: queries associated frame to frame by Hungarian matching (MinVIS).

Results are at the input video's resolution: frames are resized to ``short_side`` (detectron2
``ResizeShortestEdge``), padded to /32 inside the model, and masks are mapped back by
:mod:`vidpan.inference.postprocess`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidpan.config import Config
from vidpan.data.categories import CategoryMapping
from vidpan.errors import InputError
from vidpan.inference.array_source import ArrayVideoSource
from vidpan.inference.context import MODES, TASKS, Mode, PostProcess, Precision, RunContext, Task, Timer
from vidpan.inference.output import FrameResult, FrameWriter
from vidpan.inference.progress import StageProgress
from vidpan.inference.session import Session
from vidpan.inference.spill import TensorSpill
from vidpan.inference.video_io import VideoSource, open_video
from vidpan.models.build import DVIS, load_pretrained
from vidpan.structures import InstanceFrame, PanopticFrame, Segment

__all__ = ["Mode", "PostProcess", "Precision", "Task", "VideoInput", "VideoPrediction", "VideoPredictor"]

VideoInput = str | Path | VideoSource | np.ndarray | Sequence[np.ndarray]


@dataclass
class VideoPrediction:
    """The result of segmenting one video."""

    name: str
    mode: Mode
    task: Task
    num_frames: int
    height: int
    width: int
    fps: float
    segments: list[Segment]  # every segment that appears (VPS / VIS), by id
    frames: list[FrameResult] = field(default_factory=list)  # kept only when requested
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def frames_per_second(self) -> float:
        return self.num_frames / self.seconds if self.seconds > 0 else 0.0


class VideoPredictor:
    """Segments videos with a :class:`~vidpan.models.build.DVIS` model.

    Args:
        model: the model (a refiner is needed for ``offline`` / ``long``, a tracker for all modes
            but ``minvis``).
        config: its configuration (``config.inference`` holds the defaults of every option).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``; ``bf16`` (CPU or CUDA autocast) or ``fp16`` (CUDA only). The pixel
            decoder, deformable attention and post-processing always run in float32.
        categories: label space for outputs (names, dataset ids, colours); default from the config.
        spill_ram_budget: bytes of per-window tensors kept in RAM between the passes of
            whole-video inference before the rest goes to temporary files on disk. Default 0,
            all on disk: per-frame entries kept in RAM are long-lived blocks allocated between
            large temporaries and fragment the heap. With 16 MB in RAM, the 400-frame online
            video of ``vidpan bench memory`` peaked +36 % and +20 % above the 50-frame run in
            2 of 3 runs (+3 % in the third); with 0, 14 of 14 runs stayed within +4 %. Window
            tensors at real sizes exceed 16 MB and went to disk anyway.
    """

    def __init__(
        self,
        model: DVIS,
        config: Config,
        *,
        device: str | torch.device = "cpu",
        precision: Precision = "fp32",
        categories: CategoryMapping | None = None,
        spill_ram_budget: int = 0,
    ) -> None:
        self.device = _resolve_device(device)
        self.spill_ram_budget = spill_ram_budget
        if precision not in ("fp32", "bf16", "fp16"):
            raise InputError(f"precision: expected fp32, bf16 or fp16, got {precision!r}")
        if precision == "fp16" and self.device.type != "cuda":
            raise InputError("precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
        self.model = model.to(self.device).eval()
        self.config = config
        self.precision: Precision = precision
        self.categories = categories or CategoryMapping.from_model_config(config.model)
        if self.categories.num_classes != config.model.num_classes:
            raise InputError(
                f"categories: {self.categories.num_classes} categories for a model with "
                f"{config.model.num_classes} classes"
            )

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str | torch.device = "cpu",
        precision: Precision = "fp32",
        overrides: Sequence[str] = (),
        categories: CategoryMapping | None = None,
    ) -> VideoPredictor:
        """Load weights — a zoo name (``vidpan models``), ``hf://owner/repo[@rev]/file`` (downloaded,
        verified, converted once: :mod:`vidpan.hub`) or a native ``.safetensors`` — and wrap them."""
        from vidpan.hub.resolve import resolve_weights

        config, model = load_pretrained(resolve_weights(path).path, overrides=overrides)
        return cls(model, config, device=device, precision=precision, categories=categories)

    # -- public API ---------------------------------------------------------------------------

    def start(
        self,
        *,
        mode: Mode | None = None,
        task: Task | None = None,
        height: int | None = None,
        width: int | None = None,
        postprocess: PostProcess | None = None,
        progress: StageProgress | None = None,
    ) -> Session:
        """Open a frame-by-frame :class:`~vidpan.inference.session.Session`.

        Args:
            mode / task: override ``config.inference.mode`` / ``task``.
            height / width: the frame size (checked on every frame); default: the first frame's.
            postprocess: ``stream`` (the default for ``online`` / ``minvis``: every window is
                returned as soon as it is decided) or ``video`` (whole-video decisions, at
                :meth:`Session.close`; the only choice for ``offline`` / ``long``, which decide
                per video / per chunk).
            progress: receives per-stage frame counts (see :data:`vidpan.inference.context.ProgressHook`).
        """
        mode = mode or self.config.inference.mode
        task = task or self.config.inference.task
        if postprocess is None:
            postprocess = "stream" if mode in ("online", "minvis") else "video"
        self._check(mode, task, postprocess)
        ctx = RunContext(
            model=self.model,
            config=self.config,
            device=self.device,
            precision=self.precision,
            spill_ram_budget=self.spill_ram_budget,
            timer=Timer(self.device),
            progress=progress,
        )
        return Session(ctx, mode=mode, task=task, postprocess=postprocess, height=height, width=width)

    def __call__(self, video: VideoInput, **options: object) -> VideoPrediction:
        return self.predict(video, **options)  # type: ignore[arg-type]

    def predict(
        self,
        video: VideoInput,
        *,
        mode: Mode | None = None,
        task: Task | None = None,
        postprocess: PostProcess = "video",
        writers: Sequence[FrameWriter] = (),
        keep_frames: bool | None = None,
        progress: bool = False,
    ) -> VideoPrediction:
        """Segment one video (file, frame folder, :class:`VideoSource`, or uint8 [T, H, W, 3]).

        Args:
            mode / task: override ``config.inference.mode`` / ``task``.
            postprocess: ``video`` = the reference's whole-video decisions (``online``,
                ``offline``); ``stream`` = per-window decisions, emitted at once (``online``).
            writers: streaming writers that receive every frame (``begin_video`` is called here).
            keep_frames: also return the per-frame results (default: only when no writer is given).
            progress: show a tqdm progress bar per stage (frames decoded and segmented, decided,
                written).
        """
        source = as_video_source(video)
        mode = mode or self.config.inference.mode
        task = task or self.config.inference.task
        self._check(mode, task, postprocess)
        keep = (not writers) if keep_frames is None else keep_frames
        bar = StageProgress.tqdm(source.name, source.num_frames) if progress else None
        session = self.start(mode=mode, task=task, height=source.height, width=source.width,
                             postprocess=postprocess, progress=bar)  # fmt: skip
        bar_at_end = bar is not None and session.decides_at_end
        if bar is not None:
            bar.show(("segment", "decide", "emit") if bar_at_end else ("emit",))
        for w in writers:
            w.begin_video(source.name, frame_names=source.frame_names, fps=source.fps)
        kept: list[FrameResult] = []
        segments: dict[int, Segment] = {}
        count = 0
        start = time.perf_counter()
        timer = session.ctx.timer
        try:
            with session:
                for result, image in _paired(session, source, timer, images=bool(writers)):
                    with timer("write"):
                        for w in writers:
                            w.write(result, image=image)
                    if isinstance(result, PanopticFrame):
                        for s in result.segments:
                            segments.setdefault(s.id, s)
                    elif isinstance(result, InstanceFrame):
                        for s in result.instances:
                            segments.setdefault(s.id, s)
                    if keep:
                        kept.append(result)
                    count += 1
        finally:
            if bar is not None:
                bar.close()
        for w in writers:
            w.end_video()
        return VideoPrediction(
            name=source.name,
            mode=mode,
            task=task,
            num_frames=count,
            height=source.height,
            width=source.width,
            fps=source.fps,
            segments=sorted(segments.values(), key=lambda s: s.id),
            frames=kept,
            seconds=time.perf_counter() - start,
            timings=session.timings,
        )

    # -- internals ------------------------------------------------------------------------------

    def _check(self, mode: str, task: str, postprocess: str) -> None:
        if mode not in MODES:
            raise InputError(f"mode: expected online, offline, long or minvis, got {mode!r}")
        if task not in TASKS:
            raise InputError(f"task: expected vps, vss or vis, got {task!r}")
        if postprocess not in ("video", "stream"):
            raise InputError(f"postprocess: expected video or stream, got {postprocess!r}")
        if mode in ("offline", "long") and self.model.refiner is None:
            raise InputError(
                f"mode {mode!r} needs a refiner; this model has none (use --mode online or minvis)"
            )
        if mode != "minvis" and self.model.tracker is None:
            raise InputError(
                f"mode {mode!r} needs a tracker; this segmenter-only model supports --mode minvis"
            )
        if postprocess == "stream" and mode not in ("online", "minvis"):
            raise InputError(
                "streaming post-processing is for --mode online (offline/long decide per video/chunk)"
            )


def _paired(
    session: Session, source: VideoSource, timer: Timer, *, images: bool
) -> Iterator[tuple[FrameResult, np.ndarray | None]]:
    """Decode ``source`` into ``session``; yield each decided frame with its input image.

    Frames decided while the video streams in are paired from a buffer of the frames not yet
    decided (at most a window or a chunk). When everything is decided at the end, the images are
    decoded again (a file or folder) or, for a source that cannot be read twice (a pipe, a
    camera), read back from a spill on disk.
    """
    pending: dict[int, np.ndarray] = {}
    at_end = session.decides_at_end
    replay = images and at_end and getattr(source, "replayable", True)
    with TensorSpill(ram_budget=0) as spilled:
        frames = iter(source)
        index = 0
        while True:
            with timer("decode"):
                frame = next(frames, None)
            if frame is None:
                break
            if images and not at_end:
                pending[index] = frame
            elif images and not replay:
                spilled.append(torch.from_numpy(frame))
            index += 1
            for result in session.step(frame):
                yield result, pending.pop(result.index, None)
        rest: Iterable[FrameResult] = session.close()
        if not (images and at_end):
            for result in rest:
                yield result, pending.pop(result.index, None)
            return
        again = iter(source) if replay else (entry[0].numpy() for entry in spilled)
        for result in rest:
            with timer("decode"):
                image = next(again)
            yield result, image


def as_video_source(video: VideoInput) -> VideoSource:
    """A :class:`VideoSource` from a path, a source, or frames in memory (uint8 [T, H, W, 3])."""
    if isinstance(video, VideoSource):
        return video
    if isinstance(video, (str, Path)):
        return open_video(video)
    return ArrayVideoSource(video)


def _resolve_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"device: {device!r} is not a device ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device: CUDA requested but no CUDA device is available (use --device cpu)")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"device: expected cpu or cuda, got {device!r}")
    return dev
