"""``vidpan segment`` as a new user tries it: --out with the user's files, "$PWD", ".", the input
folder, /proc; --overwrite; a truncated download (exit 3 / --allow-partial); one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import vidpan
from vidpan.cli.main import main

WEIGHTS = str(Path(vidpan.__file__).parent / "assets" / "synthetic_tiny" / "model.safetensors")
FAST = ["--no-progress", "--mode", "online", "--set", "inference.short_side=0"]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _frames(folder: Path, n: int = 2) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((24, 32, 3), 40 * i, np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def _mp4(path: Path, n: int = 12, faststart: bool = False) -> Path:
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        for _ in range(n):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8), format="rgb24")
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _segment(inp: Path | str, out: Path | str, *extra: str) -> int:
    return main(["segment", str(inp), "--weights", WEIGHTS, "--out", str(out), *FAST, *extra])


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_out_with_user_files_keeps_them_and_overwrite_replaces_only_vidpan_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = _frames(tmp_path / "clip")
    out = tmp_path / "results"
    out.mkdir()
    (out / "thesis.tex").write_text("months of work")
    assert _segment(frames, out) == 0
    listing = capsys.readouterr().out
    assert "thesis.tex" not in listing and "frames.jsonl" in listing  # lists only what it wrote
    assert (out / "thesis.tex").read_text() == "months of work"
    assert _segment(frames, out) == 2
    assert "--overwrite" in _one_error_line(capsys.readouterr().err)
    assert _segment(frames, out, "--overwrite") == 0
    assert (out / "thesis.tex").read_text() == "months of work"
    assert sorted(p.name for p in out.iterdir()) == [
        ".vidpan-output.json", "config.yaml", "frames.jsonl", "pan_pred", "pred.json", "thesis.tex"
    ]  # fmt: skip


def test_out_holding_the_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    video = _mp4(tmp_path / "clip.mp4", n=2)
    frames = _frames(tmp_path / "frames")
    monkeypatch.chdir(tmp_path)
    for inp, out in [(video, tmp_path), ("clip.mp4", "."), (frames, frames), (frames, tmp_path)]:
        assert _segment(inp, out) == 2
        assert "input" in _one_error_line(capsys.readouterr().err)
    assert video.exists() and len(list(frames.iterdir())) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "frames"]
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert _segment(frames, ".") == 0  # --out . works when the input is elsewhere
    assert (elsewhere / "frames.jsonl").is_file()


@pytest.mark.parametrize("where", ["/proc/x", "/proc/self/nope/x"])
def test_unwritable_out_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    assert _segment(_frames(tmp_path / "clip"), where) == 2
    assert where in _one_error_line(capsys.readouterr().err)


def test_truncated_download_exits_3_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _mp4(tmp_path / "full.mp4", faststart=True).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    assert _segment(cut, tmp_path / "a") == 3
    err = capsys.readouterr().err
    assert "warning:" in err and "truncated or damaged file" in err and "Traceback" not in err
    manifest = json.loads((tmp_path / "a" / ".vidpan-output.json").read_text())
    assert "cut" in manifest["incomplete"]  # the output records that it covers a partial input
    assert _segment(cut, tmp_path / "b", "--allow-partial") == 0
    assert _segment(tmp_path / "full.mp4", tmp_path / "c") == 0


@pytest.mark.parametrize(
    "override",
    ["inference.window_size=0", "inference.short_side=-5", "inference.max_size=0", "inference.max_instances=0",
     "inference.object_mask_threshold=2", "inference.max_input_pixels=-1"],
)  # fmt: skip
def test_nonsense_values_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str
) -> None:
    assert _segment(_frames(tmp_path / "clip"), tmp_path / "out", "--set", override) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert override.split("=")[0] in line and "expected" in line
    assert not (tmp_path / "out").exists()


def test_pixel_limit_is_named_and_configurable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = _frames(tmp_path / "clip")
    assert _segment(frames, tmp_path / "out", "--set", "inference.max_input_pixels=500") == 2
    assert "inference.max_input_pixels" in _one_error_line(capsys.readouterr().err)
    assert _segment(frames, tmp_path / "out", "--set", "inference.max_input_pixels=768") == 0
