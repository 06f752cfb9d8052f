"""One output directory shared by several streaming writers, committed only on success.

:class:`OutputDirectory` never deletes anything vidpan did not write. ``--out DIR`` may be a
folder that already holds the user's files (``--out .`` included): vidpan's outputs
(``pred.json``, ``pan_pred/``, ``frames.jsonl``, ...) are assembled in a hidden work folder
``DIR/.vidpan-partial-<pid>-*/out/`` and moved into ``DIR`` entry by entry when the ``with``
block ends without an exception, after every writer registered with it has been closed. The
names it wrote are recorded in ``DIR/.vidpan-output.json``. Rules:

- an output entry whose name exists in ``DIR`` but is not recorded there as vidpan's is never
  replaced: :class:`~vidpan.errors.InputError` as soon as a writer claims the name (before
  inference);
- vidpan's own earlier outputs are replaced only with ``overwrite=True`` (``--overwrite``); the
  whole earlier output is then replaced, entries the new run does not write included;
- an output that equals or contains one of the ``inputs`` (a frame folder, a video's folder) is
  refused up front;
- on an exception (SIGINT / SIGTERM included, :mod:`vidpan.utils.signals`) the writers are
  aborted and the work folder deleted: ``DIR`` is as it was (and removed if the run created it).
  The work folder also holds the run's spilled tensors (:func:`vidpan.inference.spill.spill_directory`)
  and a lock: a later run into the same ``DIR`` removes work folders left by killed runs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any

from vidpan.errors import InputError
from vidpan.inference.spill import spill_directory
from vidpan.utils.atomic import atomic_write_json, check_writable_dir
from vidpan.utils.locks import OwnedDirectory, owned_directory, remove_stale

if TYPE_CHECKING:
    from vidpan.inference.output import FrameWriter

MANIFEST = ".vidpan-output.json"
PARTIAL_PREFIX = ".vidpan-partial-"
# Write errors that mean "the output cannot be written here", not a bug: a one-line error.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


def check_output_location(path: str | Path, inputs: Iterable[str | Path] = ()) -> None:
    """Refuse (InputError) an output folder that cannot be one or that would swallow an input.

    ``path`` must not be an existing non-folder, must be creatable, and must neither equal nor
    contain any of ``inputs`` (files or frame folders); it may lie inside an input folder (its
    work folder is hidden and sub-folders are not frames).
    """
    out = Path(path)
    check_writable_dir(out)
    resolved = out.resolve()
    for item in inputs:
        source = Path(item).resolve()
        if source == resolved:
            raise InputError(f"--out is the input {item}: choose a separate output folder", path=out)
        if resolved in source.parents:
            raise InputError(
                f"--out contains the input {item}: choose an output folder that holds no input", path=out
            )


def read_manifest(path: str | Path) -> list[str]:
    """Top-level names an earlier vidpan run wrote into the folder ``path`` ([] if none)."""
    manifest = Path(path) / MANIFEST
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        names = data["outputs"]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(
            f"{MANIFEST} is damaged; remove it if the folder holds no vidpan output", path=path
        ) from None
    if not isinstance(names, list) or not all(_is_plain_name(n) for n in names):
        raise InputError(f"{MANIFEST} is damaged; remove it if the folder holds no vidpan output", path=path)
    return names


def _is_plain_name(name: Any) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


class OutputDirectory:
    """The output directory of one run. Use as a context manager; writers get ``self``.

    Args:
        path: the final directory (created if missing; may hold other files, see the module
            docstring).
        overwrite: allow replacing vidpan's own earlier outputs in ``path``.
        inputs: the run's input files / folders; an output equal to or containing one is refused.
    """

    def __init__(
        self, path: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path] = ()
    ) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        check_output_location(self.path, inputs)  # fail before any work is done
        self._previous = read_manifest(self.path) if self.path.is_dir() else []
        if self._previous and not overwrite:
            shown = ", ".join(self._previous[:4]) + (", ..." if len(self._previous) > 4 else "")
            raise InputError(
                f"holds the outputs of an earlier vidpan run ({shown}); pass --overwrite to replace "
                "them (only vidpan's own files are replaced) or choose another --out",
                path=self.path,
            )
        self._work: OwnedDirectory | None = None
        self._root: Path | None = None
        self._created = False
        self._claimed: set[str] = set()
        self._spill: contextlib.ExitStack | None = None
        self._writers: list[FrameWriter] = []
        self.written: list[str] = []  # top-level names moved into ``path`` (after success)
        # Extra JSON-able facts recorded in the manifest (e.g. inputs that decoded incompletely).
        self.notes: dict[str, Any] = {}

    def __enter__(self) -> OutputDirectory:
        if self._work is not None or self.written:
            raise RuntimeError("an OutputDirectory can be entered once")
        self._created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            remove_stale(self.path, PARTIAL_PREFIX)  # work folders of killed runs
            self._work = owned_directory(self.path, PARTIAL_PREFIX)
            self._root = self._work.path / "out"
            self._root.mkdir()
        except OSError as exc:
            self._cleanup()
            raise InputError(
                f"cannot create the output folder ({exc.strerror or exc})", path=self.path
            ) from None
        self._spill = contextlib.ExitStack()
        self._spill.enter_context(spill_directory(self._work.path))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._work is not None
        if exc is None:
            try:
                for writer in self._writers:
                    writer.close()
                self._commit()
            except OSError as close_exc:
                self._abort_writers()
                self._cleanup()
                if close_exc.errno in _DISK_ERRNOS:
                    raise self._disk_error(close_exc) from None
                raise
            except BaseException:
                self._abort_writers()
                self._cleanup()
                raise
            self._cleanup(keep_path=True)
            return
        self._abort_writers()
        self._cleanup()
        if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS and _is_under(exc, self._work.path):
            raise self._disk_error(exc) from None

    def _disk_error(self, exc: OSError) -> InputError:
        return InputError(
            f"cannot write the output ({exc.strerror or exc}); nothing was written", path=self.path
        )

    @property
    def root(self) -> Path:
        """The temporary directory writers write into (only while the block is open)."""
        if self._root is None:
            raise RuntimeError("the OutputDirectory is not open (use it in a `with` block)")
        return self._root

    def claim(self, name: str) -> None:
        """Reserve the top-level entry ``name`` of the output; InputError if ``path/name`` exists
        and is not vidpan's own replaceable output (see the module docstring)."""
        if name in self._claimed:
            return
        if name == MANIFEST or name.startswith(PARTIAL_PREFIX) or not _is_plain_name(name):
            raise ValueError(f"{name!r} cannot be an output name")
        target = self.path / name
        if (target.exists() or target.is_symlink()) and name not in self._previous:
            raise InputError(
                f"{name} already exists and was not written by vidpan; move it or choose another --out",
                path=self.path,
            )
        self._claimed.add(name)

    def file(self, relative: str | Path) -> Path:
        """Path of ``relative`` inside the output (parents created); refuses absolute paths and `..`."""
        rel = PurePosixPath(Path(relative).as_posix())
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"output paths must be relative and inside the output directory: {relative}")
        self.claim(rel.parts[0])
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def register(self, writer: FrameWriter) -> None:
        self._writers.append(writer)

    def _commit(self) -> None:
        """Move the staged entries into ``path``, replacing vidpan's earlier outputs only."""
        assert self._work is not None and self._root is not None
        staged = sorted(p.name for p in self._root.iterdir())
        for name in staged:
            self.claim(name)  # re-check: the user may have created a file meanwhile
        old = self._work.path / "old"
        old.mkdir()
        moved_old: list[str] = []
        moved_new: list[str] = []
        try:
            for name in self._previous:
                target = self.path / name
                if target.exists() or target.is_symlink():
                    os.replace(target, old / name)
                    moved_old.append(name)
            for name in staged:
                os.replace(self._root / name, self.path / name)
                moved_new.append(name)
            atomic_write_json(self.path / MANIFEST, {"writer": "vidpan", "outputs": staged, **self.notes})
        except BaseException:
            for name in moved_new:  # roll back: the earlier output comes back
                with contextlib.suppress(OSError):
                    os.replace(self.path / name, self._root / name)
            for name in moved_old:
                with contextlib.suppress(OSError):
                    os.replace(old / name, self.path / name)
            raise
        self.written = staged

    def _cleanup(self, *, keep_path: bool = False) -> None:
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        if self._work is not None:
            self._work.remove()
        self._root = None
        if self._created and not keep_path:
            with contextlib.suppress(OSError):
                self.path.rmdir()  # only if empty: the run created it and nothing is left

    def _abort_writers(self) -> None:
        for writer in self._writers:
            with contextlib.suppress(Exception):
                writer.abort()


def _is_under(exc: OSError, folder: Path) -> bool:
    """Whether the failed operation was on a file under ``folder`` (unknown file: assume so)."""
    name = exc.filename
    if name is None:
        return True
    with contextlib.suppress(ValueError, OSError):
        Path(os.fsdecode(name)).resolve().relative_to(folder.resolve())
        return True
    return False
