"""Small timing helpers shared by the benchmarks: per-module stopwatches and peak memory."""

from __future__ import annotations

import contextlib
import functools
import resource
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch


class Stopwatch:
    """Wall time per named part, accumulated over calls (CUDA synchronised around each call)."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}
        self._patched: list[tuple[Any, str]] = []

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def wrap(self, obj: Any, method: str, name: str) -> None:
        """Time every call of ``obj.method`` under ``name`` (an instance attribute shadows it)."""
        original: Callable[..., Any] = getattr(obj, method)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.part(name):
                return original(*args, **kwargs)

        setattr(obj, method, timed)
        self._patched.append((obj, method))

    def restore(self) -> None:
        """Remove every wrapper installed by :meth:`wrap`."""
        for obj, method in self._patched:
            with contextlib.suppress(AttributeError):
                delattr(obj, method)
        self._patched.clear()

    def reset(self) -> None:
        self.seconds = {}


def peak_rss_mb() -> float:
    """The process's resident-set high-water mark in MB (``ru_maxrss``; KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
