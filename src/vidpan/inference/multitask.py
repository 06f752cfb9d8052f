"""One frozen ViT, several tasks: run the shared backbone once per frame for several models.

The seed paper's closing claim (§4): the same frozen ViT-g embeddings serve the VPS and the VSS
model, so a system running both on one stream needs the giant backbone only once. Two vidpan
models whose frozen ViTs are identical (same config and tensors, checked by a SHA-256 over the ViT
state) differ only in their adapters and heads. Because the adapter has no injectors, the ViT's
computation does not depend on the adapter: the tokens after each interaction stage are the same
for every model, and each model's extractors only read them.

:func:`share_vit` replaces the ViT of every model by a :class:`ViTView` of one :class:`SharedViT`;
:func:`run_tasks` then runs each model's ordinary :class:`~vidpan.inference.predictor.VideoPredictor`
on the same video in its own thread. The first model that reaches a frame runs the ViT on it (all
four stages) and leaves the stage outputs in a small rendezvous buffer; the others take them from
there (after checking that their preprocessed input is the same tensor, value for value); an
entry is dropped once every model has read it, and a model that runs ahead waits when
``capacity`` entries are pending. The outputs are those of separate runs, bit for bit: the same
ViT on the same input, and every other computation unchanged (tested).

Requirements (checked, :class:`~vidpan.errors.InputError` otherwise): the same ViT config and
tensors, the same interaction stages, and the same preprocessing (pixel mean / std, size
divisibility, inference short side / max size, window and segmenter batch), so that the models ask
the ViT for the same inputs in the same order.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from vidpan.config import Config
from vidpan.errors import InputError
from vidpan.inference.tee import TeeView
from vidpan.models.backbone.vit import VisionTransformer
from vidpan.models.build import DVIS


def vit_fingerprint(vit: nn.Module) -> str:
    """SHA-256 over the ViT's state (names, dtypes, shapes and bytes of every tensor)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(vit.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


@dataclass
class _Entry:
    """The ViT run on one input: stage outputs for every consumer that has not read them yet."""

    images: torch.Tensor
    tokens: torch.Tensor | None = None  # patch embed + cls + position (+ registers)
    grid: tuple[int, int] = (0, 0)
    outputs: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)
    ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class SharedViT:
    """One ViT shared by ``consumers`` adapters (see the module docstring).

    Args:
        vit: the frozen ViT.
        stages: the adapters' inclusive block ranges, e.g. ((0, 9), (10, 19), (20, 29), (30, 39)).
        consumers: how many models read every frame.
        capacity: frames computed ahead of the slowest model (each holds 5 token tensors).
    """

    def __init__(
        self, vit: VisionTransformer, stages: Sequence[tuple[int, int]], consumers: int, *, capacity: int = 2
    ) -> None:
        self.vit = vit
        self.bounds = [(int(a), int(b) + 1) for a, b in stages]  # half-open, as run_blocks
        self.consumers = consumers
        self.capacity = max(1, capacity)
        self._entries: dict[int, _Entry] = {}
        self._active = set(range(consumers))
        self._cond = threading.Condition()
        self._views: list[ViTView] = []
        self.computed = 0  # inputs the ViT ran on
        self.reused = 0  # inputs served from the buffer

    def view(self, consumer: int) -> ViTView:
        view = ViTView(self, consumer)
        self._views.append(view)
        return view

    def reset(self) -> None:
        """Start a new video: every consumer active, nothing buffered, input counters at 0."""
        with self._cond:
            self._entries.clear()
            self._active = set(range(self.consumers))
            for view in self._views:
                view.restart()

    def acquire(self, consumer: int, seq: int, images: torch.Tensor) -> _Entry:
        """The entry of the consumer's ``seq``-th input; computes it if this consumer is first."""
        with self._cond:
            while seq not in self._entries and len(self._entries) >= self.capacity:
                self._cond.wait()
            entry = self._entries.get(seq)
            first = entry is None
            if entry is None:
                entry = _Entry(images=images, pending=set(self._active))
                self._entries[seq] = entry
        if first:
            try:
                self._compute(entry)
                self.computed += 1
            except BaseException as exc:
                entry.error = exc
                raise
            finally:
                entry.ready.set()
        else:
            entry.ready.wait()
            if entry.error is not None:
                raise RuntimeError(f"the shared ViT failed on input {seq}") from entry.error
            if entry.images.shape != images.shape or not torch.equal(entry.images, images):
                raise RuntimeError(
                    f"shared ViT: the models' preprocessed input {seq} differs ({tuple(images.shape)} vs "
                    f"{tuple(entry.images.shape)}): their preprocessing settings must be the same"
                )
            self.reused += 1
        return entry

    def _compute(self, entry: _Entry) -> None:
        with torch.no_grad():
            tokens, entry.grid = self.vit.prepare_tokens(entry.images)
            entry.tokens = tokens
            for start, stop in self.bounds:
                tokens = self.vit.run_blocks(tokens, start, stop)
                entry.outputs[(start, stop)] = tokens

    def release(self, consumer: int, seq: int) -> None:
        """``consumer`` has read every stage of input ``seq``."""
        with self._cond:
            entry = self._entries.get(seq)
            if entry is not None:
                entry.pending.discard(consumer)
                if not entry.pending:
                    del self._entries[seq]
            self._cond.notify_all()

    def finish(self, consumer: int) -> None:
        """``consumer`` reads nothing more (done or failed): nobody waits for it any longer."""
        with self._cond:
            self._active.discard(consumer)
            for seq in [s for s, e in self._entries.items() if e.pending <= {consumer}]:
                del self._entries[seq]
            for entry in self._entries.values():
                entry.pending.discard(consumer)
            self._cond.notify_all()


class ViTView(nn.Module):
    """What a :class:`~vidpan.models.backbone.adapter.ViTAdapter` calls on its ``vit``, served by a
    :class:`SharedViT`. The shared ViT is not a registered submodule (it is not in this model's
    ``state_dict`` and ``.to()`` does not move it: :func:`run_tasks` places it)."""

    shared: SharedViT

    def __init__(self, shared: SharedViT, consumer: int) -> None:
        super().__init__()
        object.__setattr__(self, "shared", shared)
        self.consumer = consumer
        self._seq = 0
        self._entry: _Entry | None = None
        self._current = -1

    def restart(self) -> None:
        self._seq, self._entry, self._current = 0, None, -1

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.shared.vit.num_prefix_tokens)

    @property
    def depth(self) -> int:
        return int(self.shared.vit.depth)

    @property
    def embed_dim(self) -> int:
        return int(self.shared.vit.embed_dim)

    def prepare_tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """[N, 3, H, W] -> (tokens [N, 1+R+h*w, C], grid): this input's entry (computed or reused)."""
        seq = self._seq
        self._seq += 1
        self._entry = self.shared.acquire(self.consumer, seq, images)
        self._current = seq
        assert self._entry.tokens is not None
        return self._entry.tokens, self._entry.grid

    def run_blocks(self, tokens: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """The stored output of blocks ``start .. stop-1`` for the current input."""
        entry = self._entry
        if entry is None or (start, stop) not in entry.outputs:
            raise RuntimeError(f"shared ViT: blocks [{start}, {stop}) are not a stage of the shared ViT")
        out = entry.outputs[(start, stop)]
        if stop == self.shared.bounds[-1][1]:  # the last stage: this consumer is done with the input
            self.shared.release(self.consumer, self._current)
            self._entry = None
        return out


def _inference_signature(config: Config) -> tuple[Any, ...]:
    m, inf = config.model, config.inference
    return (
        tuple(m.pixel_mean),
        tuple(m.pixel_std),
        m.size_divisibility,
        inf.short_side,
        inf.max_size,
        inf.window_size,
        getattr(inf, "segmenter_batch", 1),
    )


def share_vit(models: Sequence[DVIS], configs: Sequence[Config], *, capacity: int = 2) -> SharedViT:
    """Make ``models`` share the first model's ViT (their own ViTs are dropped).

    Raises :class:`InputError` when their ViTs (config or tensors), interaction stages or
    preprocessing differ.
    """
    if len(models) < 2 or len(models) != len(configs):
        raise ValueError("share_vit needs two or more models, each with its config")
    first = configs[0].model
    for i, cfg in enumerate(configs[1:], start=1):
        if cfg.model.vit != first.vit:
            raise InputError(
                f"model {i + 1}: its ViT config differs from model 1's ({cfg.model.vit} vs {first.vit})"
            )
        if tuple(cfg.model.adapter.interaction_indexes) != tuple(first.adapter.interaction_indexes):
            raise InputError(f"model {i + 1}: its adapter's interaction stages differ from model 1's")
        if _inference_signature(cfg) != _inference_signature(configs[0]):
            raise InputError(
                f"model {i + 1}: its preprocessing (pixel mean/std, size divisibility, short side, max size, "
                "window, segmenter batch) differs from model 1's; use --set to make them equal"
            )
    vits = [cast(nn.Module, m.segmenter.backbone.vit) for m in models]
    hashes = [vit_fingerprint(v) for v in vits]
    for i, h in enumerate(hashes[1:], start=1):
        if h != hashes[0]:
            raise InputError(
                f"model {i + 1}: its frozen ViT differs from model 1's (SHA-256 {h[:12]} vs {hashes[0][:12]}); "
                "the models must share one frozen backbone"
            )
    vit = vits[0]
    if not isinstance(vit, VisionTransformer):
        raise InputError("these models already share a ViT")
    shared = SharedViT(vit.eval(), first.adapter.interaction_indexes, len(models), capacity=capacity)
    for k, m in enumerate(models):
        m.segmenter.backbone.vit = shared.view(k)
    return shared


@dataclass
class TaskRun:
    """One model's job in :func:`run_tasks`: its predictor, the ``predict`` keyword arguments and,
    optionally, its own video (a reader of its own, or a :class:`~vidpan.inference.tee.TeeView`)."""

    predictor: Any  # VideoPredictor
    options: dict[str, Any] = field(default_factory=dict)
    video: Any = None  # None: run_tasks' video


def run_tasks(shared: SharedViT, runs: Sequence[TaskRun], video: Any = None) -> list[Any]:
    """Run every model on ``video`` concurrently, the ViT once per frame; returns their predictions.

    ``video`` must be re-openable by each model (a path, a frame array or list); each predictor
    gets its own reader. A run with its own ``video`` reads that instead (a stream read once is
    teed: :mod:`vidpan.inference.tee`). The first error of any model is raised after all threads
    stopped.
    """
    devices = {str(r.predictor.device) for r in runs}
    if len(devices) != 1:
        raise InputError(f"the shared models must run on one device, got {sorted(devices)}")
    shared.vit.to(runs[0].predictor.device)
    shared.reset()
    results: list[Any] = [None] * len(runs)
    errors: list[BaseException | None] = [None] * len(runs)

    def work(k: int) -> None:
        own = runs[k].video
        try:
            results[k] = runs[k].predictor.predict(video if own is None else own, **runs[k].options)
        except BaseException as exc:  # re-raised in the caller's thread
            errors[k] = exc
        finally:
            shared.finish(k)
            if isinstance(own, TeeView):
                own.close()  # the other views no longer keep frames for this one

    threads = [threading.Thread(target=work, args=(k,), name=f"vidpan-task-{k}") for k in range(len(runs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for exc in errors:
        if exc is not None:
            raise exc
    return results
