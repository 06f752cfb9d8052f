"""``vidpan segment my.mp4``, as the README's first line: no ``--weights`` (the shipped demo model,
said on stderr) and no ``--out`` (``my_vidpan/`` in the current directory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidpan.cli.main import main
from vidpan.cli.segment import default_out


def test_segment_with_no_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert (
        main(["synth", "--out", str(data), "--videos", "1", "--frames", "4", "--size", "64x96", "--mp4"]) == 0
    )
    (video,) = sorted((data / "videos").glob("*.mp4"))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["segment", str(video), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "synthetic demo model" in err and f"writing to {video.stem}_vidpan/" in err
    out = tmp_path / f"{video.stem}_vidpan"
    assert (out / "pred.json").is_file() and len(list((out / "pan_pred").rglob("*.png"))) == 4


def test_video_list_needs_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["segment", "--video-list", str(tmp_path)]) == 2
    assert "--out" in capsys.readouterr().err


def test_default_out_names() -> None:
    assert default_out("clips/my.mp4") == Path("my_vidpan")
    assert default_out("frames/0001_synth/") == Path("0001_synth_vidpan")
    assert default_out("-") == Path("stdin_vidpan")
    assert default_out("http://host/videos/street.mkv?token=x") == Path("street_vidpan")
