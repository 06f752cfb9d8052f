"""Helpers of the batch tests (a module of its own: conftest.py is not importable by name)."""

from __future__ import annotations

import filecmp
import os
import socket
import sys
from pathlib import Path

WEIGHTS = (
    Path(__file__).resolve().parents[2] / "src" / "vidpan" / "assets" / "synthetic_tiny" / "model.safetensors"
)
# The test-time resize is the identity: the 64x96 videos are segmented at their own size (fast).
FAST = ["--weights", str(WEIGHTS), "--set", "inference.short_side=0", "--no-progress"]
NAMES = ["0000_synth", "0001_synth", "0002_synth", "0003_synth"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a child vidpan: our sources first on the path, one thread."""
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDPAN_TEST_")}
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def vidpan_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "vidpan", *args]


def assert_same_tree(a: Path, b: Path) -> None:
    """``a`` and ``b`` hold the same files with the same bytes."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    _, mismatch, errors = filecmp.cmpfiles(a, b, [str(f) for f in files_a], shallow=False)
    assert not mismatch and not errors, (mismatch, errors)


def assert_same_outputs(out: Path, reference: Path) -> None:
    """Every video folder of ``out`` equals the reference's; nothing half-written is left."""
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == NAMES
    assert not list(out.rglob(".vidpan-partial-*")), "a work folder was left behind"
    for name in NAMES:
        assert_same_tree(out / name, reference / name)
