"""Write outputs so that nothing half-written is ever left behind.

Files are written to a temporary sibling ``.<name>.<pid>.*.tmp`` (:func:`atomic_write`, or
:func:`atomic_path` for writers that need a file name) and renamed into place (rename
is atomic on one file system); temporaries left by a writer that was SIGKILLed (its pid is gone)
are removed by the next write of the same file. Directories of outputs are assembled in a temporary sibling directory and renamed at the
end; on any exception the temporary directory is removed and the destination is untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _public(path: str | Path, *, directory: bool = False) -> None:
    """Give a temporary file / directory the permissions a normal ``open`` / ``mkdir`` would
    (``mkstemp`` / ``mkdtemp`` create them private: 0600 / 0700)."""
    mode = (0o777 if directory else 0o666) & ~_umask()
    os.chmod(path, mode | (stat.S_IRUSR | stat.S_IWUSR | (stat.S_IXUSR if directory else 0)))


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], *, fsync: bool = False) -> None:
    """``write(file)`` into a temporary sibling of ``path``, then rename it over ``path``.

    With ``fsync`` the data and the directory entry are flushed to disk before and after the
    rename (checkpoints: a crash never leaves a torn file under the final name).
    """
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, "wb") as f:
        write(f)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path of ``path`` (named ``.<name>.<pid>.*.tmp``) for a writer that
    needs a file name (``safetensors.save_file``); it is renamed over ``path`` when the block
    succeeds and removed when it fails. Stale temporaries of dead writers are removed first.
    With ``fsync`` the written file and the directory entry are flushed to disk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            file_fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(file_fd)
            finally:
                os.close(file_fd)
        _public(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if fsync:
        with contextlib.suppress(OSError):  # not supported on every platform / file system
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


def _remove_stale_temps(path: Path) -> None:
    """Delete ``.<name>.<pid>.*.tmp`` siblings of ``path`` whose writer process is gone (SIGKILL
    mid-write: a checkpoint or ``vidpan convert`` output that never got renamed)."""
    prefix = f".{path.name}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(".tmp")):
                continue
            pid = name[len(prefix) :].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, then rename)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 1) -> None:
    """Serialise ``obj`` as JSON and write it to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``path`` when the block succeeds.

    The temporary directory is a sibling of ``path`` (same file system, so the final rename is
    atomic). If ``path`` already exists it is replaced only after the new contents are complete
    (``overwrite=True``) — a failed run never destroys earlier results.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: output directory already exists")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=parent))
    _public(tmp, directory=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old: Path | None = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
        old.rmdir()
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_writable_dir(path: str | Path) -> None:
    """Fail early (before any work) if outputs cannot be created at ``path``."""
    from vidpan.errors import InputError

    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise InputError("output location is not writable", path=path)
    if path.exists() and not path.is_dir():
        raise InputError("output path exists and is not a directory", path=path)
