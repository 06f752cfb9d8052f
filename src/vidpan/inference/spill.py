"""Per-window tensors kept out of RAM between the passes of whole-video inference.

Whole-video decisions (DVIS++ VPS thresholds on the video-level class, the refiner over every
frame) need a second look at per-window tensors (mask logits, mask features) once the whole
video has been seen. The reference keeps them all in RAM (DVIS #13: "killed" on long videos).
:class:`TensorSpill` keeps them in RAM up to a budget and writes the rest to ``.npy`` files in
a private temporary directory, reading each back when it is needed, so resident memory stays
bounded while disk use grows with the video. Values round-trip exactly.

Where the files go: ``directory`` if given, else the folder set by :func:`spill_directory` (an
:class:`~vidpan.inference.output.OutputDirectory` sets its own ``.partial`` folder, so spilled
tensors live and die with the run's work in progress), else the system temp directory. Each spill
folder is an :func:`~vidpan.utils.locks.owned_directory` (``vidpan-spill-<pid>-*``): SIGINT and
SIGTERM remove it (the ``with`` block unwinds), and the folders a SIGKILLed run left behind are
removed by the next spill created in the same parent.
"""

from __future__ import annotations

import contextlib
import contextvars
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np
import torch

from vidpan.utils.locks import OwnedDirectory, owned_directory, remove_stale

SPILL_PREFIX = "vidpan-spill-"

_DEFAULT_PARENT: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "vidpan_spill_parent", default=None
)


@contextlib.contextmanager
def spill_directory(parent: str | Path) -> Iterator[None]:
    """Within the block, spills created without ``directory`` go under ``parent``."""
    token = _DEFAULT_PARENT.set(Path(parent))
    try:
        yield
    finally:
        _DEFAULT_PARENT.reset(token)


class TensorSpill:
    """An append-only list of tuples of CPU tensors, spilled to disk beyond ``ram_budget`` bytes.

    Args:
        ram_budget: bytes kept in memory before entries go to disk (0 = always disk).
        directory: parent of the temporary directory (default: the :func:`spill_directory` of
            the block, else the system temp directory).
    """

    def __init__(self, *, ram_budget: int = 256 << 20, directory: str | Path | None = None) -> None:
        self.ram_budget = ram_budget
        self._parent = Path(directory) if directory is not None else _DEFAULT_PARENT.get()
        self._owned: OwnedDirectory | None = None
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
            parent = self._parent if self._parent is not None else Path(tempfile.gettempdir())
            parent.mkdir(parents=True, exist_ok=True)
            remove_stale(parent, SPILL_PREFIX)  # left by killed runs
            self._owned = owned_directory(parent, SPILL_PREFIX)
            self._dir = self._owned.path
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

    def drain(self) -> Iterator[tuple[torch.Tensor, ...]]:
        """Yield every entry in order, dropping each (its memory or file) once the next is asked
        for: a single last pass that lowers the peak while the consumer works."""
        for i in range(len(self._entries)):
            entry = self[i]
            stored = self._entries[i]
            self._entries[i] = ()
            if isinstance(stored, Path):
                stored.unlink(missing_ok=True)
            else:
                self._ram -= sum(t.numel() * t.element_size() for t in stored)
            del stored
            yield entry
            del entry
        self._entries.clear()

    def close(self) -> None:
        """Drop every entry and delete the temporary directory."""
        self._entries.clear()
        self._ram = 0
        if self._owned is not None:
            self._owned.remove()
            self._owned = self._dir = None

    @property
    def path(self) -> Path | None:
        """The spill folder (None until the first entry goes to disk)."""
        return self._dir

    def __enter__(self) -> TensorSpill:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
