"""Per-window tensors kept out of RAM between the passes of whole-video inference.

Whole-video decisions (DVIS++ VPS thresholds on the video-level class, the refiner over every
frame) need a second look at per-window tensors (mask logits, mask features) once the whole
video has been seen. The reference keeps them all in RAM (DVIS #13: "killed" on long videos).
:class:`TensorSpill` keeps them in RAM up to a budget and writes the rest to ``.npy`` files in
a private temporary directory, reading each back when it is needed, so resident memory stays
bounded while disk use grows with the video. Values round-trip exactly.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np
import torch


class TensorSpill:
    """An append-only list of tuples of CPU tensors, spilled to disk beyond ``ram_budget`` bytes.

    Args:
        ram_budget: bytes kept in memory before entries go to disk (0 = always disk).
        directory: parent of the temporary directory (default: the system temp directory).
    """

    def __init__(self, *, ram_budget: int = 256 << 20, directory: str | Path | None = None) -> None:
        self.ram_budget = ram_budget
        self._parent = None if directory is None else Path(directory)
        self._dir: Path | None = None
        self._entries: list[tuple[torch.Tensor, ...] | Path] = []
        self._ram = 0
        self.bytes_on_disk = 0

    def append(self, *tensors: torch.Tensor) -> None:
        """Store one entry (moved to CPU)."""
        cpu = tuple(t.detach().cpu() for t in tensors)
        size = sum(t.numel() * t.element_size() for t in cpu)
        if self._ram + size <= self.ram_budget:
            self._entries.append(cpu)
            self._ram += size
            return
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="vidpan-spill-", dir=self._parent))
        path = self._dir / f"{len(self._entries):07d}.npz"
        with open(path, "wb") as f:
            np.savez(f, *[t.numpy() for t in cpu])
        self._entries.append(path)
        self.bytes_on_disk += size

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        entry = self._entries[index]
        if isinstance(entry, Path):
            with np.load(entry) as data:
                return tuple(torch.from_numpy(data[f"arr_{i}"].copy()) for i in range(len(data.files)))
        return entry

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for i in range(len(self._entries)):
            yield self[i]

    def close(self) -> None:
        """Drop every entry and delete the temporary directory."""
        self._entries.clear()
        self._ram = 0
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> TensorSpill:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
