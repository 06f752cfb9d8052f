"""The hostile-input corpus (``benchmarks/fuzz.py``, >= 200 generated cases): 0 crashes, 0
tracebacks, 0 leftovers, and every case classified as expected (valid-but-unusual inputs work,
hostile ones are one-line rejections)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import fuzz  # noqa: E402


def test_fuzz_corpus(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    results = fuzz.run_corpus(tmp_path)
    table = fuzz.table(results)
    found = fuzz.problems(results)
    with capsys.disabled():
        print("\n" + table)
    assert len(results) >= 200
    categories = {r.case.category for r in results}
    assert {
        "containers",
        "frame folders",
        "weights",
        "--set overrides",
        "training data",
        "serve uploads",
    } <= categories
    assert not found, "\n".join(found)
    assert not (tmp_path / "in" / "weights" / "PWNED").exists()  # the pickles never ran
