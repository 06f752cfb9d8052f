"""Work directories owned by a live process, and removal of those a killed process left behind.

A run keeps its work in progress (a ``.partial`` output, spilled tensors) in a private directory.
SIGINT / SIGTERM are cleaned up by the run itself (:mod:`vidpan.utils.signals`), but SIGKILL,
an OOM kill or a power cut leave the directory behind. :func:`owned_directory` creates such a
directory with a ``lock`` file inside on which the creating process holds an exclusive
``flock``; the kernel releases the lock when the process dies, however it dies. A later run calls
:func:`remove_stale` on the parent folder: every directory with the given prefix whose lock can
be taken (its owner is gone) is deleted. Unlike a pid check this is immune to pid reuse.

The pid is also part of the name (``<prefix><pid>-<random>``): a directory whose lock file was
never created (killed within microseconds of ``mkdtemp``) is stale when that pid is not alive.
Only directories with the exact prefix are touched, so nothing a user made is ever removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO

LOCK_NAME = "lock"


class OwnedDirectory:
    """A directory this process owns (see the module docstring); :meth:`remove` deletes it."""

    def __init__(self, path: Path, lock: IO[bytes]) -> None:
        self.path = path
        self._lock: IO[bytes] | None = lock

    def remove(self) -> None:
        """Delete the directory and release the lock (idempotent)."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock.close()  # closing the file releases the flock
            self._lock = None


def owned_directory(parent: str | Path, prefix: str) -> OwnedDirectory:
    """Create ``parent/<prefix><pid>-<random>/`` holding a ``lock`` file flocked by this process.

    Raises OSError if the directory cannot be created.
    """
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
    try:
        lock = open(path / LOCK_NAME, "wb")  # noqa: SIM115 - held open for the directory's lifetime
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return OwnedDirectory(path, lock)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def is_stale(path: Path, prefix: str) -> bool:
    """Whether ``path`` (named ``<prefix><pid>-...``) was left behind by a process that is gone."""
    lock_path = path / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        pid_text = path.name[len(prefix) :].split("-", 1)[0]
        return pid_text.isdigit() and not _pid_alive(int(pid_text))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # a live process holds it
    finally:
        os.close(fd)  # releases the lock we may have taken
    return True


def remove_stale(parent: str | Path, prefix: str) -> list[Path]:
    """Delete the directories ``parent/<prefix>*`` whose owner is gone; returns those removed."""
    removed: list[Path] = []
    try:
        candidates = [p for p in Path(parent).iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for path in candidates:
        if path.is_dir() and not path.is_symlink() and is_stale(path, prefix):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
