"""glibc malloc tuning: applied on Linux/glibc, switchable off, never changes values."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str, env_value: str | None) -> str:
    import os

    env = dict(os.environ)
    env.pop("VIDPAN_MALLOC_TUNING", None)
    env.pop("MKL_DISABLE_FAST_MM", None)  # another test's vidpan main() may have set it here
    if env_value is not None:
        env["VIDPAN_MALLOC_TUNING"] = env_value
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tune_malloc_applies_and_can_be_disabled() -> None:
    code = (
        "import torch; from vidpan.utils.allocator import tune_malloc; ok = tune_malloc(); "
        "torch.manual_seed(0); a = torch.randn(2048, 4096); b = (a @ a.T).sum().item(); "
        "print(ok, repr(b))"
    )
    on = _run(code, None).split()
    off = _run(code, "0").split()
    assert on[0] == "True" and off[0] == "False"
    assert on[1] == off[1]  # same numbers either way


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tune_malloc_turns_off_mkl_buffer_cache_unless_set() -> None:
    code = "import os; from vidpan.utils.allocator import tune_malloc; tune_malloc(); print(os.environ.get('MKL_DISABLE_FAST_MM'))"
    assert _run(code, None).strip() == "1"
    assert _run(code, "0").strip() == "None"  # tuning off: the environment is left alone
    import os

    env = {**os.environ, "MKL_DISABLE_FAST_MM": "0"}
    env.pop("VIDPAN_MALLOC_TUNING", None)
    kept = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert kept.stdout.strip() == "0"  # the user's choice wins
