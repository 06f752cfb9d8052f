"""``vidpan export`` and ``vidpan segment --engine onnxruntime``: the exported engine writes the
same files, byte for byte, as the eager run; bad arguments are exit code 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from conftest import Exported, synthetic_video
from vidpan.cli.main import main


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("mode", ["online", pytest.param("offline", marks=pytest.mark.slow)])
def test_segment_onnxruntime_writes_the_same_files(
    shipped_export: Exported, tmp_path: Path, mode: str
) -> None:
    frames = tmp_path / "clip"
    frames.mkdir()
    for i, image in enumerate(synthetic_video(frames=7, seed=11)):
        Image.fromarray(image).save(frames / f"{i:05d}.png")
    common = [str(frames), "--weights", str(shipped_export.weights), "--mode", mode, "--no-progress"]
    assert main(["segment", *common, "--out", str(tmp_path / "eager")]) == 0
    assert main(["segment", *common, "--out", str(tmp_path / "ort"), "--engine", "onnxruntime",
                 "--exported", str(shipped_export.directory)]) == 0  # fmt: skip
    eager, ort = _files(tmp_path / "eager"), _files(tmp_path / "ort")
    assert sorted(eager) == sorted(ort)
    assert any(name.startswith("pan_pred/") for name in eager)
    for name in eager:
        assert eager[name] == ort[name], f"{name} differs"


def test_online_step_part_is_what_the_engine_runs(
    shipped_export: Exported, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--part online-step`` writes both graphs into one directory, and ``vidpan segment --engine
    onnxruntime --exported DIR`` on it writes the same files as the eager run."""
    exported = tmp_path / "online"
    weights = str(shipped_export.weights)
    assert main(["export", "--weights", weights, "--part", "online-step", "--size", "128x224",
                 "--out", str(exported)]) == 0  # fmt: skip
    assert "--engine onnxruntime --exported" in capsys.readouterr().out
    names = sorted(p.name for p in exported.iterdir())
    assert names == ["segmenter.onnx", "segmenter.onnx.json", "tracker-step.onnx", "tracker-step.onnx.json"]
    frames = tmp_path / "clip"
    frames.mkdir()
    for i, image in enumerate(synthetic_video(frames=5, seed=12)):
        Image.fromarray(image).save(frames / f"{i:05d}.png")
    common = [str(frames), "--weights", weights, "--mode", "online", "--no-progress"]
    assert main(["segment", *common, "--out", str(tmp_path / "eager")]) == 0
    assert main(["segment", *common, "--out", str(tmp_path / "ort"), "--engine", "onnxruntime",
                 "--exported", str(exported)]) == 0  # fmt: skip
    eager, ort = _files(tmp_path / "eager"), _files(tmp_path / "ort")
    assert sorted(eager) == sorted(ort) and any(n.startswith("pan_pred/") for n in eager)
    for name in eager:
        assert eager[name] == ort[name], f"{name} differs"
    # A file name is not a directory.
    assert main(["export", "--weights", weights, "--part", "online-step", "--size", "128x224",
                 "--out", str(tmp_path / "x.onnx")]) == 2  # fmt: skip


def test_export_command(shipped_export: Exported, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "exp" / "tracker-step.onnx"
    args = ["export", "--weights", str(shipped_export.weights), "--part", "tracker-step", "--size", "128x224"]
    assert main([*args, "--out", str(out), "--external-data"]) == 0
    printed = capsys.readouterr().out
    assert "opset 18" in printed and "new_state_last_output" in printed
    manifest = json.loads((tmp_path / "exp" / "tracker-step.onnx.json").read_text())
    assert manifest["part"] == "tracker-step" and manifest["size"] == [128, 224]
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == ["tracker-step.onnx", "tracker-step.onnx.data", "tracker-step.onnx.json"]
    assert manifest["external_data"] == ["tracker-step.onnx.data"]
    assert out.stat().st_size < 2**20 < (out.parent / "tracker-step.onnx.data").stat().st_size
    # The weights are read from the external file: the step runs and equals the in-file export.
    import numpy as np
    import onnxruntime as ort

    feeds = {}
    rng = np.random.default_rng(0)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    inline = ort.InferenceSession(
        str(shipped_export.directory / "tracker-step.onnx"), providers=["CPUExecutionProvider"]
    )
    for spec in manifest["inputs"]:
        if spec["dtype"] == "int64":
            feeds[spec["name"]] = (
                np.arange(spec["shape"][-1])[None] if spec["name"] == "perm" else np.ones(1, np.int64)
            )
        else:
            feeds[spec["name"]] = rng.standard_normal(spec["shape"]).astype(np.float32)
    for a, b in zip(session.run(None, feeds), inline.run(None, feeds), strict=True):
        assert np.array_equal(a, b)


def test_bad_arguments_exit_2(
    shipped_export: Exported, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["export", "--weights", str(shipped_export.weights), "--part", "segmenter"]
    assert main([*base, "--size", "128by224", "--out", str(tmp_path / "s.onnx")]) == 2
    assert main([*base, "--size", "128x224", "--out", str(tmp_path / "s.pt2")]) == 2
    assert main([*base, "--size", "128x224", "--weights", str(tmp_path / "nope.safetensors"),
                 "--out", str(tmp_path / "s.onnx")]) == 2  # fmt: skip
    video = tmp_path / "clip"
    video.mkdir()
    for i, image in enumerate(synthetic_video(frames=2, seed=3)):
        Image.fromarray(image).save(video / f"{i:05d}.png")
    seg = ["segment", str(video), "--weights", str(shipped_export.weights), "--out", str(tmp_path / "o"),
           "--engine", "onnxruntime", "--no-progress"]  # fmt: skip
    assert main(seg) == 2  # no --exported
    assert main([*seg, "--exported", str(shipped_export.directory), "--precision", "bf16"]) == 2
    err = capsys.readouterr().err
    assert "--exported DIR" in err and "float32" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob("s.*"))
