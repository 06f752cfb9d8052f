"""Serial batches: outputs equal single-video runs, failures are recorded, re-runs skip."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from batch_helpers import FAST, NAMES, assert_same_tree, subprocess_env, vidpan_cmd

from vidpan.batch.manifest import manifest_files, read_records
from vidpan.cli.main import main


@pytest.mark.usefixtures("one_thread")
def test_batch_equals_single_video_runs(videos: Path, reference: Path, tmp_path: Path) -> None:
    for name in NAMES:
        single = tmp_path / name
        assert main(["segment", str(videos / f"{name}.mp4"), "--out", str(single), *FAST]) == 0
        assert_same_tree(reference / name, single)
    records = read_records(manifest_files(reference))
    assert [r.video for r in records] == NAMES and {r.status for r in records} == {"done"}
    assert not (reference / "failures.jsonl").exists()


@pytest.mark.usefixtures("one_thread")
def test_failures_are_recorded_and_the_batch_goes_on(
    videos: Path, reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "videos"
    shutil.copytree(videos, folder, copy_function=shutil.copy2)  # same mtimes, other paths
    (folder / "0001_corrupt.mp4").write_bytes(b"\x00\x00\x00 not an mp4 at all")
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"videos/{n}.mp4\n" for n in [*NAMES, "0001_corrupt", "0009_missing"]))
    out = tmp_path / "out"
    args = ["segment", "--video-list", str(listing), "--out", str(out), *FAST]
    assert main(args) == 1
    table = capsys.readouterr().out
    assert "4 done, 0 skipped (finished before), 2 failed" in table
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [(f["video"], f["status"]) for f in failures] == [
        ("0001_corrupt", "failed"),
        ("0009_missing", "failed"),
    ]
    assert "cannot open as a video" in failures[0]["error"]
    assert "no such video file" in failures[1]["error"]
    for name in NAMES:
        assert_same_tree(out / name, reference / name)
    # A re-run skips the finished videos and retries only the failed ones.
    (folder / "0001_corrupt.mp4").unlink()
    shutil.copy2(folder / "0000_synth.mp4", folder / "0001_corrupt.mp4")
    listing.write_text("".join(f"videos/{n}.mp4\n" for n in [*NAMES, "0001_corrupt"]))
    stamps = {n: (out / n).stat().st_ino for n in NAMES}
    assert main(args) == 0
    assert "1 done, 4 skipped (finished before), 0 failed" in capsys.readouterr().out
    assert {n: (out / n).stat().st_ino for n in NAMES} == stamps  # not rewritten
    assert not (out / "failures.jsonl").exists()
    # Other options: other config hash, so everything is redone.
    assert main([*args, "--set", "inference.window_size=2"]) == 0
    assert "5 done, 0 skipped" in capsys.readouterr().out


def test_bad_arguments_exit_2(videos: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    assert main(["segment", "--video-list", str(tmp_path / "nothing-*.mp4"), "--out", out, *FAST]) == 2
    assert (
        main(["segment", str(videos / "0000_synth.mp4"), "--video-list", str(videos), "--out", out, *FAST])
        == 2
    )
    assert main(["segment", "--video-list", str(videos), "--out", out, "--workers", "2", *FAST]) == 2
    assert main(["segment", "--engine", "ray", str(videos / "0000_synth.mp4"), "--out", out, *FAST]) == 2
    missing = str(tmp_path / "missing.safetensors")  # weights that do not load: exit 2, nothing written
    assert main(["segment", "--video-list", str(videos), "--out", out, *FAST, "--weights", missing]) == 2
    assert not Path(out).exists()


def test_engine_ray_without_ray_says_how_to_install(videos: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "no_ray" / "ray"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('ray is not installed (test)')\n")
    env = subprocess_env()
    env["PYTHONPATH"] = f"{blocker.parent}:{env['PYTHONPATH']}"
    cmd = vidpan_cmd(
        "segment", "--video-list", str(videos), "--out", str(tmp_path / "out"), "--engine", "ray", *FAST
    )
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "pip install vidpan[ray]" in proc.stderr and "Traceback" not in proc.stderr
