"""--engine ray on a local Ray started by the test (2 CPUs, 2 workers): outputs equal the serial
run; a worker that dies mid-video (test hook: ``os._exit`` at frame k) is restarted and the video
retried, with nothing lost or duplicated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_helpers import FAST, NAMES, assert_same_outputs

from vidpan.batch.manifest import manifest_files, read_records
from vidpan.cli.main import main

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.usefixtures("local_ray")
def test_ray_equals_serial(
    videos: Path, reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["segment", "--video-list", str(videos), "--out", str(out), "--engine", "ray", "--workers", "2"]
    assert main([*args, *FAST]) == 0
    assert "4 done, 0 skipped" in capsys.readouterr().out
    assert_same_outputs(out, reference)
    records = read_records(manifest_files(out))
    assert sorted(r.video for r in records) == NAMES and {r.status for r in records} == {"done"}
    assert len({r.worker for r in records}) == 2  # both actors worked


@pytest.mark.usefixtures("local_ray")
def test_worker_killed_mid_video_is_retried(
    videos: Path, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, marker = tmp_path / "out", tmp_path / "hook-fired"
    monkeypatch.setenv("VIDPAN_TEST_EXIT_AT_FRAME", f"{NAMES[2]}:3")
    monkeypatch.setenv("VIDPAN_TEST_HOOK_ONCE", str(marker))
    args = ["segment", "--video-list", str(videos), "--out", str(out), "--engine", "ray", "--workers", "2"]
    assert main([*args, *FAST]) == 0
    assert marker.exists()  # the worker did die at frame 3 of that video
    records = read_records(manifest_files(out))
    assert sorted((r.video, r.status) for r in records) == [(n, "done") for n in NAMES]  # once each
    assert not (out / "failures.jsonl").exists()
    assert_same_outputs(out, reference)  # and no temporary folder of the dead attempt is left
