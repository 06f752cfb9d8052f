"""``vidpan serve`` argument checks: bad values are a one-line error (exit 2) before anything loads."""

from __future__ import annotations

import pytest

from vidpan.cli.main import main


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--port", "0"], "--port: expected 1..65535"), (["--max-frames", "0"], "must be positive")],
)
def test_serve_rejects_bad_arguments(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_serve_rejects_missing_weights(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["serve", "--weights", str(tmp_path / "none.safetensors")]) == 2
    assert "none.safetensors" in capsys.readouterr().err
