"""Thread count and OpenMP wait policy selection (vidpan.utils.threads)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from vidpan.utils import threads as th


def test_configure_openmp_bounds_the_spin_unless_the_user_chose() -> None:
    env: dict[str, str] = {}
    assert th.configure_openmp(env) and env["GOMP_SPINCOUNT"] == str(th.SPIN_COUNT)
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert not th.configure_openmp(env) and env["OMP_WAIT_POLICY"] == "ACTIVE" and "GOMP_SPINCOUNT" not in env
    env = {"GOMP_SPINCOUNT": "0"}
    assert not th.configure_openmp(env) and env["GOMP_SPINCOUNT"] == "0"
    env = {"VIDPAN_OMP_PASSIVE": "0"}
    assert not th.configure_openmp(env) and "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env


def test_choose_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert th.choose_threads(3, num_params=10).threads == 3
    assert th.choose_threads(None, num_params=3_000_000).threads == 1
    big = th.choose_threads(None, num_params=100_000_000)
    assert big.threads == min(th.available_cpus(), th.MAX_AUTO_THREADS)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert th.choose_threads(None, num_params=3_000_000) == th.ThreadChoice(2, "OMP_NUM_THREADS")


def test_parse_threads() -> None:
    assert th.parse_threads("auto") is None and th.parse_threads("4") == 4
    with pytest.raises(ValueError):
        th.parse_threads("0")
    with pytest.raises(ValueError):
        th.parse_threads("x")


def test_apply_threads_sets_torch() -> None:
    before = torch.get_num_threads()
    try:
        assert th.apply_threads(1, num_params=None).threads == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_segment_rejects_bad_threads() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vidpan", "segment", "x.mp4", "--out", "o", "--threads", "zero"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "positive integer or auto" in proc.stderr
