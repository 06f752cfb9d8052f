"""The command line starts without the heavy libraries: ``vidpan --help`` and every subcommand's
``--help`` import no torch, numpy or scipy, and ``vidpan eval`` never imports torch.

These are import checks, not timings (timings are in ``benchmarks/startup.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vidpan.cli.main import COMMANDS

HEAVY = ("torch", "numpy", "scipy", "PIL", "av", "huggingface_hub", "gradio", "ray", "onnxruntime")

PROBE = """
import sys, json
from vidpan.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def _imported(*argv: str) -> list[str]:
    code = PROBE.format(heavy=repr(HEAVY))
    out = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], *[[name, "--help"] for name in COMMANDS]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    assert _imported(*argv) == []


def test_argparse_error_imports_nothing_heavy() -> None:
    assert _imported("segment") == []  # missing arguments: argparse exits before any import


def test_eval_imports_no_torch(tmp_path) -> None:
    # A failing eval (missing files) runs the command's own imports and stops at the input check.
    missing = str(tmp_path / "missing")
    found = _imported("eval", "vps", "--gt-json", missing, "--gt-masks", missing,
                      "--pred-json", missing, "--pred-masks", missing)  # fmt: skip
    assert "torch" not in found


def test_convert_formats_match_the_converter() -> None:
    from vidpan.cli.convert import FORMATS
    from vidpan.models.convert import FORMATS as CONVERTER_FORMATS

    assert set(FORMATS) == set(CONVERTER_FORMATS)
