"""``vidpan bench scaling`` on a tiny grid: every point measured, table and PNG written."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from vidpan.bench.scaling import QUICK_GRID, ScalingGrid, grid_runs
from vidpan.cli.main import main


def test_grid_runs_has_both_sweeps_without_duplicates() -> None:
    grid = ScalingGrid(presets=("a",), modes=("online",), frames=(4, 8), sizes=((10, 20), (30, 40)))
    assert grid_runs(grid) == [
        ("a", "online", 4, (10, 20)),
        ("a", "online", 8, (10, 20)),
        ("a", "online", 4, (30, 40)),
    ]
    assert len(grid_runs(QUICK_GRID)) == 3 * 3


@pytest.mark.slow
def test_bench_scaling_cli_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scaling"
    argv = ["bench", "scaling", "--quick", "--modes", "online", "offline", "--frames", "3", "6",
            "--sizes", "64x96", "96x128", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = list(csv.DictReader((out / "scaling.csv").open()))
    assert len(rows) == 2 * 3
    assert {r["mode"] for r in rows} == {"online", "offline"}
    assert all(float(r["seconds_per_frame"]) > 0 and float(r["peak_rss_mb"]) > 0 for r in rows)
    assert (out / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| tiny | offline | 6 | 64x96 |" in (out / "scaling.md").read_text()
    assert "wrote" in capsys.readouterr().out
