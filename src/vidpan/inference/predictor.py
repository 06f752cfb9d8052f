"""Video inference: :class:`VideoPredictor` owns the video loop and all state (STYLE.md #6).

The models are stateless; the predictor decodes the video window by window, runs the segmenter
on each window, carries the tracker state across windows, runs the refiner, post-processes and
streams per-frame results to writers. Modes:

``online``
    segmenter + referring tracker, window by window (``window_size`` frames, DVIS++
    ``TEST.WINDOW_SIZE``). With ``postprocess="video"`` (default) the VPS/VSS/VIS decisions are
    the reference's whole-video ones (class = mean of the tracker logits over the whole video,
    overlap ratio over the whole volume): per-window mask logits are kept in a
    :class:`~vidpan.inference.spill.TensorSpill` (RAM up to a budget, then disk) and frames are
    emitted after the last window. With ``postprocess="stream"`` each window is decided and
    emitted as soon as it is processed (class from the running mean of the tracker logits, ids
    stable per track slot), so nothing grows with the video.
``offline``
    segmenter + tracker + temporal refiner over the whole video at once, as DVIS++ (``exact``).
    Mask features are spilled; the refiner's per-frame masks are computed window by window.
    Resident memory grows only with the per-frame query embeddings (Q × 2C floats per frame).
``long``
    the refiner runs over overlapping chunks (``chunk_length`` frames, ``chunk_overlap`` shared
    with the next chunk; default the refiner's 21-frame training clip) while the tracker carries
    its state over the whole video. Identities are stitched by construction: the tracker's slot
    is the identity in every chunk, and segment ids are slot-stable (things ``1 + slot``, stuff
    ``1 + Q + class``). Each overlap's frames are taken half from each chunk. Memory is bounded
    by the chunk length.

``minvis``
    segmenter only (no tracker): queries are associated frame to frame by Hungarian matching
    of their embeddings (MinVIS, the DVIS++ segmenter's own video inference), then
    post-processed like ``online``. For segmenter-only checkpoints and as a baseline.

Results are at the input video's resolution: frames are resized to ``short_side`` (detectron2
``ResizeShortestEdge``), padded to /32 inside the model, and masks are mapped back by
:mod:`vidpan.inference.postprocess`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from vidpan.config import Config
from vidpan.data.categories import CategoryMapping
from vidpan.errors import InputError
from vidpan.inference.output import FrameResult, FrameWriter
from vidpan.inference.postprocess import (
    ChunkWinners,
    MaskGeometry,
    PanopticStream,
    class_probabilities,
    resize_masks,
)
from vidpan.inference.spill import TensorSpill
from vidpan.inference.video_io import ArrayVideoSource, VideoSource, open_video, resize_frames
from vidpan.models.association import match_embeddings
from vidpan.models.build import DVIS, load_pretrained
from vidpan.models.tracker import TrackerState
from vidpan.structures import InstanceFrame, PanopticFrame, Segment, SegmenterOutput, SemanticFrame

Mode = Literal["online", "offline", "long", "minvis"]
Task = Literal["vps", "vss", "vis"]
Precision = Literal["fp32", "bf16", "fp16"]
PostProcess = Literal["video", "stream"]
VideoInput = str | Path | VideoSource | np.ndarray | Sequence[np.ndarray]
_FrameFactory = Callable[[int], "FrameResult"]


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


@dataclass
class _Window:
    """One decoded and segmented window of frames."""

    indices: list[int]
    images: list[np.ndarray]  # original frames [H, W, 3] uint8
    seg: SegmenterOutput  # N = frames of the window
    geometry: MaskGeometry


class _Timer:
    """Accumulates wall time per stage (synchronising CUDA so GPU time lands in its stage)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


class VideoPredictor:
    """Segments videos with a :class:`~vidpan.models.build.DVIS` model.

    Args:
        model: the model (a refiner is needed for ``offline`` / ``long``, a tracker for all modes).
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
            progress: show a tqdm progress bar (frames/s).
        """
        source = as_video_source(video)
        inf = self.config.inference
        mode = mode or inf.mode
        task = task or inf.task
        if mode not in ("online", "offline", "long", "minvis"):
            raise InputError(f"mode: expected online, offline, long or minvis, got {mode!r}")
        if task not in ("vps", "vss", "vis"):
            raise InputError(f"task: expected vps, vss or vis, got {task!r}")
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
        keep = (not writers) if keep_frames is None else keep_frames
        timer = _Timer(self.device)
        for w in writers:
            w.begin_video(source.name, frame_names=source.frame_names, fps=source.fps)
        if mode in ("online", "minvis"):
            stream = self._online(
                source, task, timer, streaming=postprocess == "stream", minvis=mode == "minvis"
            )
        elif mode == "offline":
            stream = self._offline(source, task, timer)
        else:
            stream = self._long(source, task, timer)
        bar = _progress(source, progress)
        kept: list[FrameResult] = []
        segments: dict[int, Segment] = {}
        start = time.perf_counter()
        count = 0
        for result, image in stream:
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
            if bar is not None:
                bar.update(1)
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
            timings=dict(timer.seconds),
        )

    # -- shared steps -----------------------------------------------------------------------------

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _windows(self, source: VideoSource, timer: _Timer) -> Iterator[_Window]:
        """Decode, resize and segment the video window by window."""
        inf = self.config.inference
        frames_iter = iter(source.iter_windows(inf.window_size))
        while True:
            with timer("decode"):
                window = next(frames_iter, None)
                if window is None:
                    return
                images = [frame for _, frame in window]
                x = resize_frames(images, short_side=inf.short_side, max_size=inf.max_size)
            with timer("segmenter"), torch.inference_mode(), self._autocast():
                seg = self._segment(x.to(self.device), inf.segmenter_batch)
            h4, w4 = seg.mask_logits.shape[-2:]
            geometry = MaskGeometry(
                padded_size=(4 * h4, 4 * w4),
                image_size=(int(x.shape[-2]), int(x.shape[-1])),
                output_size=(int(images[0].shape[0]), int(images[0].shape[1])),
            )
            yield _Window([i for i, _ in window], images, seg, geometry)

    def _segment(self, x: torch.Tensor, batch: int) -> SegmenterOutput:
        """Segmenter on [N, 3, H, W] frames, ``batch`` at a time (0 = all at once)."""
        if batch <= 0 or batch >= x.shape[0]:
            return _float(self.model.segmenter(x, return_aux=False))
        parts = [_float(self.model.segmenter(part, return_aux=False)) for part in x.split(batch)]
        return replace(
            parts[0],
            class_logits=torch.cat([p.class_logits for p in parts]),
            mask_logits=torch.cat([p.mask_logits for p in parts]),
            embeds=torch.cat([p.embeds for p in parts]),
            embeds_unnormed=torch.cat([p.embeds_unnormed for p in parts]),
            mask_features=torch.cat([p.mask_features for p in parts]),
        )

    def _track(
        self, window: _Window, state: TrackerState | None, *, masks: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, TrackerState]:
        """Tracker on one window -> (class logits [t,Q,K+1], mask logits [t,Q,h,w] | None,
        un-normed embeddings [t,Q,C], new state)."""
        assert self.model.tracker is not None
        seg = window.seg
        with torch.inference_mode(), self._autocast():
            out, state = self.model.tracker(
                seg.embeds[None],
                seg.embeds_unnormed[None],
                seg.mask_features[None] if masks else None,
                state,
            )
        mask_logits = None if out.mask_logits is None else out.mask_logits[0].float()
        return out.class_logits[0].float(), mask_logits, out.embeds[0].float(), state

    @staticmethod
    def _match_queries(
        window: _Window, previous: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """MinVIS: per frame, Hungarian matching (1 − cosine) of the segmenter's normed query
        embeddings to the previous frame's aligned ones; the segmenter's predictions re-ordered
        into those slots -> (class logits [t,Q,K+1], mask logits [t,Q,h,w], last aligned [Q,C])."""
        seg = window.seg
        logits, masks = [], []
        for t in range(seg.embeds.shape[0]):
            if previous is None:
                perm = torch.arange(seg.embeds.shape[1], device=seg.embeds.device)
            else:
                perm = match_embeddings(previous[None], seg.embeds[t][None])[0]
            previous = seg.embeds[t][perm]
            logits.append(seg.class_logits[t][perm])
            masks.append(seg.mask_logits[t][perm])
        assert previous is not None
        return torch.stack(logits), torch.stack(masks), previous

    # -- modes --------------------------------------------------------------------------------------

    def _online(
        self, source: VideoSource, task: Task, timer: _Timer, *, streaming: bool, minvis: bool = False
    ) -> Iterator[tuple[FrameResult, np.ndarray]]:
        state: TrackerState | None = None
        aligned: torch.Tensor | None = None  # MinVIS: last frame's slot-aligned embeddings
        logit_sum: torch.Tensor | None = None
        count = 0
        geometry: MaskGeometry | None = None
        with TensorSpill(ram_budget=self.spill_ram_budget) as spill:
            for window in self._windows(source, timer):
                masks: torch.Tensor | None
                with timer("tracker"):
                    if minvis:
                        logits, masks, aligned = self._match_queries(window, aligned)
                    else:
                        logits, masks, _, state = self._track(window, state, masks=True)
                assert masks is not None
                logit_sum = logits.sum(0) if logit_sum is None else logit_sum + logits.sum(0)
                count += logits.shape[0]
                geometry = window.geometry
                if streaming:
                    yield from self._emit(
                        task, logit_sum / count, None, [masks], window.geometry, window.indices, window.images, timer,
                        stable=True,
                    )  # fmt: skip
                else:
                    spill.append(masks)
            if not streaming and logit_sum is not None and geometry is not None:
                chunks = (entry[0] for entry in spill)
                yield from self._emit_video(task, logit_sum / count, None, chunks, geometry, source, timer)

    def _offline(
        self, source: VideoSource, task: Task, timer: _Timer
    ) -> Iterator[tuple[FrameResult, np.ndarray]]:
        assert self.model.refiner is not None
        state: TrackerState | None = None
        logit_sum: torch.Tensor | None = None
        instance_embeds: list[torch.Tensor] = []
        frame_embeds: list[torch.Tensor] = []
        geometry: MaskGeometry | None = None
        with TensorSpill(ram_budget=self.spill_ram_budget) as features:
            for window in self._windows(source, timer):
                with timer("tracker"):
                    logits, _, embeds, state = self._track(window, state, masks=False)
                logit_sum = logits.sum(0) if logit_sum is None else logit_sum + logits.sum(0)
                instance_embeds.append(embeds)
                frame_embeds.append(window.seg.embeds_unnormed)
                features.append(window.seg.mask_features)
                geometry = window.geometry
            if logit_sum is None or geometry is None:
                return
            count = sum(e.shape[0] for e in instance_embeds)
            with timer("refiner"), torch.inference_mode(), self._autocast():
                refined = self.model.refiner(
                    torch.cat(instance_embeds)[None], torch.cat(frame_embeds)[None], None
                )
            normed = refined.embeds.float()  # [1, T, Q, C]
            class_logits = refined.class_logits[0, 0].float()
            del instance_embeds, frame_embeds

            def mask_chunks() -> Iterator[torch.Tensor]:
                start = 0
                for (mf,) in features:
                    stop = start + mf.shape[0]
                    with timer("refiner"), torch.inference_mode():
                        chunk = self.model.refiner.predict_masks(  # type: ignore[union-attr]
                            normed[:, start:stop], mf[None].to(self.device)
                        )[0].float()
                    start = stop
                    yield chunk

            yield from self._emit_video(
                task, class_logits, logit_sum / count, mask_chunks(), geometry, source, timer
            )

    def _long(
        self, source: VideoSource, task: Task, timer: _Timer
    ) -> Iterator[tuple[FrameResult, np.ndarray]]:
        assert self.model.refiner is not None
        inf = self.config.inference
        length, overlap = inf.chunk_length, inf.chunk_overlap
        if length < 1 or not 0 <= overlap < length:
            raise InputError(
                f"inference.chunk_length / chunk_overlap: need length >= 1 and 0 <= overlap < length, "
                f"got {length} / {overlap}"
            )
        state: TrackerState | None = None
        # Per-frame buffers of the current chunk.
        buf_idx: list[int] = []
        buf_img: list[np.ndarray] = []
        buf_logits: list[torch.Tensor] = []
        buf_inst: list[torch.Tensor] = []
        buf_frame: list[torch.Tensor] = []
        buf_mf: list[torch.Tensor] = []
        geometry: MaskGeometry | None = None
        first_chunk = True

        def refine(final: bool) -> Iterator[tuple[FrameResult, np.ndarray]]:
            nonlocal first_chunk
            n = min(length, len(buf_idx))
            emit_from = 0 if first_chunk else overlap // 2
            emit_to = n if final else n - (overlap - overlap // 2)
            assert self.model.refiner is not None and geometry is not None
            with timer("refiner"), torch.inference_mode(), self._autocast():
                refined = self.model.refiner(
                    torch.stack(buf_inst[:n])[None], torch.stack(buf_frame[:n])[None], None
                )
                normed = refined.embeds.float()[:, emit_from:emit_to]
                mf = torch.stack(buf_mf[emit_from:emit_to])[None].to(self.device)
                masks = self.model.refiner.predict_masks(normed, mf)[0].float()
            class_logits = refined.class_logits[0, 0].float()
            aux = torch.stack(buf_logits[:n]).mean(0)
            yield from self._emit(
                task, class_logits, aux, [masks], geometry, buf_idx[emit_from:emit_to], buf_img[emit_from:emit_to],
                timer, stable=True,
            )  # fmt: skip
            first_chunk = False

        for window in self._windows(source, timer):
            with timer("tracker"):
                logits, _, embeds, state = self._track(window, state, masks=False)
            geometry = window.geometry
            for k, index in enumerate(window.indices):
                buf_idx.append(index)
                buf_img.append(window.images[k])
                buf_logits.append(logits[k])
                buf_inst.append(embeds[k])
                buf_frame.append(window.seg.embeds_unnormed[k])
                buf_mf.append(window.seg.mask_features[k])
                if len(buf_idx) == length:
                    yield from refine(final=False)
                    drop = length - overlap
                    for buf in (buf_idx, buf_img, buf_logits, buf_inst, buf_frame, buf_mf):
                        del buf[:drop]
        if buf_idx:
            # The last (possibly shorter) chunk: the frames not emitted yet, with the carried overlap.
            yield from refine(final=True)

    # -- post-processing and emission --------------------------------------------------------------

    def _emit(
        self,
        task: Task,
        class_logits: torch.Tensor,
        aux_class_logits: torch.Tensor | None,
        mask_chunks: Sequence[torch.Tensor],
        geometry: MaskGeometry,
        indices: Sequence[int],
        images: Sequence[np.ndarray],
        timer: _Timer,
        *,
        stable: bool,
    ) -> Iterator[tuple[FrameResult, np.ndarray]]:
        """Decide and emit frames whose mask logits are all given (one window or chunk)."""
        results = self._decide(
            task, class_logits, aux_class_logits, iter(mask_chunks), geometry, timer, stable=stable
        )
        for (result_fn, k), image in zip(results, images, strict=True):
            yield result_fn(indices[k]), image

    def _emit_video(
        self,
        task: Task,
        class_logits: torch.Tensor,
        aux_class_logits: torch.Tensor | None,
        mask_chunks: Iterator[torch.Tensor],
        geometry: MaskGeometry,
        source: VideoSource,
        timer: _Timer,
    ) -> Iterator[tuple[FrameResult, np.ndarray]]:
        """Decide on the whole video, then emit every frame with the re-decoded input image."""
        results = self._decide(
            task, class_logits, aux_class_logits, mask_chunks, geometry, timer, stable=False
        )
        images = iter(source)
        for index, (result_fn, _) in enumerate(results):
            with timer("decode"):
                image = next(images)
            yield result_fn(index), image

    def _decide(
        self,
        task: Task,
        class_logits: torch.Tensor,
        aux_class_logits: torch.Tensor | None,
        mask_chunks: Iterator[torch.Tensor],
        geometry: MaskGeometry,
        timer: _Timer,
        *,
        stable: bool,
    ) -> Iterator[tuple[_FrameFactory, int]]:
        """Yield, frame by frame, a factory ``index -> result`` and the frame's position.

        VPS takes two passes over the chunks (counts over the whole span, then painting); the
        compact per-voxel winners of the first pass are spilled in between.
        """
        inf = self.config.inference
        num_queries = class_logits.shape[0]
        if task == "vps":
            stream = PanopticStream(
                class_logits,
                geometry,
                num_things=self.config.model.num_things,
                object_mask_threshold=inf.object_mask_threshold,
                overlap_threshold=inf.overlap_threshold,
                aux_class_logits=aux_class_logits,
                device=self.device,
                stable_ids=num_queries if stable else None,
            )
            with TensorSpill(ram_budget=self.spill_ram_budget) as winners:
                for chunk in mask_chunks:
                    # One frame at a time: the full-resolution [Q, H, W] planes dominate memory.
                    for frame in chunk.split(1):
                        with timer("postprocess"):
                            w = stream.add(frame)
                        winners.append(w.winner, w.foreground)
                with timer("postprocess"):
                    segments = stream.finish()
                order = {s.id: (k, s) for k, s in enumerate(segments)}
                position = 0
                for winner, foreground in winners:
                    with timer("postprocess"):
                        painted = stream.paint(ChunkWinners(winner, foreground)).numpy()
                    for ids in painted:
                        yield _panoptic_factory(ids, order), position
                        position += 1
            return
        probs = class_probabilities(class_logits, aux_class_logits)[:, :-1]  # [Q, K]
        if task == "vss":
            position = 0
            for chunk in mask_chunks:
                for frame in chunk.split(1):
                    with timer("postprocess"):
                        labels = _semantic_labels(frame.to(self.device), probs, geometry)
                    yield _semantic_factory(labels.cpu().numpy().astype(np.int32)), position
                    position += 1
            return
        # VIS: the max_num best (track, class) pairs, each with its track's binary masks.
        scores, flat = probs.flatten().topk(min(inf.max_instances, probs.numel()))
        labels_k = (flat % probs.shape[1]).tolist()
        queries = (flat // probs.shape[1]).tolist()
        # One id per (track, class) pair: the same in every frame, chunk and window.
        instances = [
            Segment(
                id=1 + q * probs.shape[1] + c,
                category_id=c,
                isthing=c < self.config.model.num_things,
                score=float(s),
                track=q,
            )
            for q, c, s in zip(queries, labels_k, scores.tolist(), strict=True)
        ]
        position = 0
        selected = torch.tensor(queries, dtype=torch.long)
        for chunk in mask_chunks:
            for frame in chunk.split(1):
                with timer("postprocess"):
                    sel = frame[:, selected.to(frame.device)].to(self.device)
                    binary = (resize_masks(sel, geometry, sigmoid="none") > 0).cpu().numpy()
                yield _instance_factory(binary[0], instances), position
                position += 1


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def _semantic_labels(
    frame: torch.Tensor,
    probs: torch.Tensor,
    geometry: MaskGeometry,
    planes: int = PanopticStream.PLANES_PER_PASS,
) -> torch.Tensor:
    """Per-pixel class of one frame: argmax_k sum_q p(k | q) * mask_q, accumulated over the
    queries ``planes`` at a time so the full-resolution masks of all Q queries never coexist.

    Args: frame [1, Q, h, w] mask logits, probs [Q, K]. Returns [H, W] int64.
    """
    semseg: torch.Tensor | None = None
    probs = probs.to(frame.device)
    for start in range(0, frame.shape[1], planes):
        masks = resize_masks(frame[:, start : start + planes], geometry, sigmoid="before_output_resize")
        part = torch.einsum("qk,tqhw->tkhw", probs[start : start + planes], masks)
        semseg = part if semseg is None else semseg + part
    assert semseg is not None
    return semseg[0].argmax(0)


def _panoptic_factory(ids: np.ndarray, order: dict[int, tuple[int, Segment]]) -> _FrameFactory:
    """Segments present in the frame, in the segment list's order."""
    present = sorted((order[int(i)] for i in np.unique(ids) if i > 0), key=lambda p: p[0])
    segments = [seg for _, seg in present]
    return lambda index: PanopticFrame(index=index, segment_ids=ids, segments=segments)


def _semantic_factory(labels: np.ndarray) -> _FrameFactory:
    return lambda index: SemanticFrame(index=index, classes=labels)


def _instance_factory(masks: np.ndarray, instances: list[Segment]) -> _FrameFactory:
    return lambda index: InstanceFrame(index=index, masks=masks, instances=instances)


def _float(seg: SegmenterOutput) -> SegmenterOutput:
    """Outputs in float32 (autocast may leave bf16/fp16) for the tracker and post-processing."""
    return replace(
        seg,
        class_logits=seg.class_logits.float(),
        mask_logits=seg.mask_logits.float(),
        embeds=seg.embeds.float(),
        embeds_unnormed=seg.embeds_unnormed.float(),
        mask_features=seg.mask_features.float(),
    )


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


def _progress(source: VideoSource, enabled: bool):  # type: ignore[no-untyped-def]
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=source.num_frames or None, unit="frame", desc=source.name, dynamic_ncols=True)
