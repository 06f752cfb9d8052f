"""The batch manifest: what was segmented, from which input, with which model and options.

``OUT/manifest.jsonl`` holds one JSON record per finished attempt (:class:`ManifestRecord`):
the video name, its input identity (absolute path, size, mtime and optionally sha256), the
config hash (:func:`config_hash`), the status (``done`` / ``failed``), timings and the error. The
last record of a video wins. A re-run skips a video whose last record is ``done`` with the same
input identity and config hash (and whose output folder exists) and redoes every other one.

Crash safety: each record is appended with a single ``write`` of a complete line followed by
``fsync`` (:class:`ManifestWriter`); a process killed mid-write can leave at most a torn last
line, which :func:`read_records` skips (and the next append starts on a fresh line). Exactly one
process appends to a given file: the serial run or the Ray driver to ``manifest.jsonl``, torchrun
rank ``r`` to ``manifest.rank{r}.jsonl``. Readers merge all of them; rank 0 folds the rank files
into ``manifest.jsonl`` at the end of a torchrun run (:func:`consolidate`).

``OUT/failures.jsonl`` lists the records of the videos whose last attempt failed; it is
rewritten atomically at the end of every run (:func:`write_failures`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vidpan.inference.output import MANIFEST as OUTPUT_MANIFEST
from vidpan.utils.atomic import atomic_write_text

MANIFEST = "manifest.jsonl"
FAILURES = "failures.jsonl"
Status = Literal["done", "failed"]


@dataclass(frozen=True)
class InputIdentity:
    """What a video's input was: a change in any field means the video is redone.

    For a frame folder, ``size`` is the total size of its files and ``mtime_ns`` the newest
    mtime among them and the folder itself (adding, removing or editing a frame changes them).
    """

    path: str
    size: int
    mtime_ns: int
    sha256: str | None = None


def _sha256_file(path: Path, digest: Any | None = None) -> Any:
    h = digest if digest is not None else hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h


def input_identity(path: Path, *, sha256: bool = False) -> InputIdentity:
    """Identity of a video file or frame folder (raises ``OSError`` if it cannot be read)."""
    path = path.absolute()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        stats = [p.stat() for p in files]
        size = sum(s.st_size for s in stats)
        mtime = max([path.stat().st_mtime_ns, *(s.st_mtime_ns for s in stats)])
        digest = None
        if sha256:
            h = hashlib.sha256()
            for p in files:
                h.update(p.name.encode() + b"\0")
                _sha256_file(p, h)
            digest = h.hexdigest()
        return InputIdentity(str(path), size, mtime, digest)
    st = path.stat()
    return InputIdentity(
        str(path), st.st_size, st.st_mtime_ns, _sha256_file(path).hexdigest() if sha256 else None
    )


def same_input(a: InputIdentity, b: InputIdentity) -> bool:
    """Same path, size and mtime; and same sha256 where both have one."""
    if (a.path, a.size, a.mtime_ns) != (b.path, b.size, b.mtime_ns):
        return False
    return a.sha256 is None or b.sha256 is None or a.sha256 == b.sha256


def config_hash(options: Any) -> str:
    """Hash of what decides a video's outputs: the segment options (a dataclass) without the
    ones that do not (``progress``, ``overwrite``, the weights' path), the device type (``cuda:1`` counts as
    ``cuda``), and the sha256 of the weights file and of the ``--categories`` file.

    ``weights`` that is not a file (e.g. a model-zoo name) is hashed as its name.
    """
    fields = dataclasses.asdict(options)
    fields.pop("progress", None)
    fields.pop("overwrite", None)
    weights = Path(str(fields.pop("weights")))
    fields["weights_sha256"] = _sha256_file(weights).hexdigest() if weights.is_file() else f"name:{weights}"
    if fields.get("categories"):
        fields["categories"] = _sha256_file(Path(fields["categories"])).hexdigest()
    if isinstance(fields.get("device"), str):
        fields["device"] = fields["device"].split(":", 1)[0]
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ManifestRecord:
    """One finished attempt at one video."""

    video: str  # output name: OUT/<video>/
    input: InputIdentity
    config_hash: str
    status: Status
    started_at: float  # Unix time the attempt started
    seconds: float  # wall time of the attempt: open, segment, write
    frames: int = 0
    segments: int = 0
    segment_seconds: float = 0.0  # the predictor's own time (model + post-processing)
    error: str | None = None
    warning: str | None = None  # done, but e.g. the input decoded to fewer frames than declared
    worker: str = ""  # host:pid (and rank) that ran it

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> ManifestRecord:
        raw = json.loads(line)
        raw["input"] = InputIdentity(**raw["input"])
        return cls(**raw)


class ManifestWriter:
    """Appends records to one manifest file, one complete line per ``write`` + ``fsync``.

    The file (and its folder) is created at the first append, so a run that fails before any
    video leaves nothing behind.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._fresh_line = True

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        size = os.fstat(self._fd).st_size
        if size:
            with open(self.path, "rb") as f:
                f.seek(size - 1)
                self._fresh_line = f.read(1) == b"\n"  # else a torn line from a killed run

    def append(self, record: ManifestRecord) -> None:
        if self._fd < 0:
            self._open()
        line = ("" if self._fresh_line else "\n") + record.to_json() + "\n"
        os.write(self._fd, line.encode("utf-8"))
        os.fsync(self._fd)
        self._fresh_line = True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def manifest_files(out_dir: Path) -> list[Path]:
    """``manifest.jsonl`` and every ``manifest.rank{r}.jsonl`` in ``out_dir``."""
    files = [out_dir / MANIFEST] if (out_dir / MANIFEST).is_file() else []
    return files + sorted(out_dir.glob("manifest.rank*.jsonl"))


def read_records(paths: Iterable[Path]) -> list[ManifestRecord]:
    """All readable records of ``paths`` in time order (``started_at``, then file order);
    torn or malformed lines are skipped."""
    records: list[ManifestRecord] = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.endswith("\n"):
                    continue  # torn last line
                try:
                    records.append(ManifestRecord.from_json(line))
                except (ValueError, TypeError, KeyError):
                    continue
    unique = list(dict.fromkeys(records))  # the same record in two files: once
    return sorted(unique, key=lambda r: r.started_at)


def latest(records: Iterable[ManifestRecord]) -> dict[str, ManifestRecord]:
    """The last record of each video."""
    out: dict[str, ManifestRecord] = {}
    for r in records:
        out[r.video] = r
    return out


def is_finished(record: ManifestRecord | None, identity: InputIdentity, chash: str, out_dir: Path) -> bool:
    """Whether a video needs no work: its last record is done, for this input and config, and
    its output folder holds a committed output."""
    return (
        record is not None
        and record.status == "done"
        and record.config_hash == chash
        and same_input(record.input, identity)
        and (out_dir / record.video / OUTPUT_MANIFEST).is_file()
    )


def consolidate(out_dir: Path) -> list[ManifestRecord]:
    """Fold every ``manifest.rank*.jsonl`` into ``manifest.jsonl`` (atomic rewrite), then remove
    the rank files. Run by one process when no other writes (torchrun rank 0 after a barrier)."""
    rank_files = sorted(out_dir.glob("manifest.rank*.jsonl"))
    records = read_records(manifest_files(out_dir))
    if rank_files:
        atomic_write_text(out_dir / MANIFEST, "".join(r.to_json() + "\n" for r in records))
        for path in rank_files:
            path.unlink(missing_ok=True)
    return records


def write_failures(out_dir: Path, records: Iterable[ManifestRecord]) -> list[ManifestRecord]:
    """Rewrite ``failures.jsonl`` with the last record of each video whose last attempt failed
    (removed when there is none); returns those records."""
    failed = [r for r in latest(records).values() if r.status == "failed"]
    path = out_dir / FAILURES
    if failed:
        atomic_write_text(path, "".join(r.to_json() + "\n" for r in sorted(failed, key=lambda r: r.video)))
    else:
        path.unlink(missing_ok=True)
    return failed
