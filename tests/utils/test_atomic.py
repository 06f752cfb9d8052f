"""Atomic outputs: nothing half-written, earlier results kept on failure, normal permissions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vidpan.utils.atomic import atomic_directory, atomic_path, atomic_write, atomic_write_text


def test_atomic_write_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")

    def boom(f) -> None:  # type: ignore[no-untyped-def]
        f.write(b"partial")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom, fsync=True)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # no temporary left behind
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_atomic_directory_keeps_previous_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_directory(out) as d:
        (d / "result").write_text("1")
    with pytest.raises(ValueError), atomic_directory(out) as d:
        (d / "result").write_text("2")
        raise ValueError("failed run")
    assert (out / "result").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with atomic_directory(out) as d:
        (d / "result").write_text("3")
    assert (out / "result").read_text() == "3"
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask  # like mkdir, not mkdtemp's 0700


def test_temporaries_of_a_killed_writer_are_removed_by_the_next_write(tmp_path: Path) -> None:
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    stale = tmp_path / f".model.safetensors.{pid}.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    alive = tmp_path / f".model.safetensors.{os.getppid()}.def456.tmp"  # a live process's: kept
    alive.write_bytes(b"in progress")
    atomic_write_text(tmp_path / "model.safetensors", "complete")
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "model.safetensors"]


def test_atomic_path_renames_on_success_and_cleans_up_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "model.safetensors"
    with atomic_path(out, fsync=True) as tmp:
        assert tmp.name.startswith(f".model.safetensors.{os.getpid()}.") and tmp.suffix == ".tmp"
        tmp.write_bytes(b"complete")
    assert out.read_bytes() == b"complete"
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert out.read_bytes() == b"complete"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
