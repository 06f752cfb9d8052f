"""SIGKILL a whole serial batch mid-video, re-run it: finished videos are skipped, the rest is done."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from batch_helpers import FAST, NAMES, assert_same_outputs, subprocess_env, vidpan_cmd

from vidpan.batch.manifest import manifest_files, read_records


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the batch ended early: {proc.communicate()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigkill_then_resume(videos: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = vidpan_cmd("segment", "--video-list", str(videos), "--out", str(out), *FAST)
    # The batch hangs at frame 2 of the second video (a test hook), so the kill lands mid-video.
    env = subprocess_env(VIDPAN_TEST_HANG_AT_FRAME=f"{NAMES[1]}:2")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        manifest = out / "manifest.jsonl"
        _wait_for(lambda: manifest.is_file() and manifest.read_text().count("\n") == 1, proc)
        _wait_for(lambda: bool(list(out.glob(f"{NAMES[1]}/.vidpan-partial-*"))), proc)
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == NAMES[:2]
    assert [p.name[:15] for p in (out / NAMES[1]).iterdir()] == [".vidpan-partial"]  # only the killed work
    with open(manifest, "a") as f:
        f.write('{"video": "0001_synth", "sta')  # and a torn line, as a kill mid-append leaves
    first = read_records(manifest_files(out))
    assert [(r.video, r.status) for r in first] == [(NAMES[0], "done")]
    inode, mtime = (out / NAMES[0]).stat().st_ino, (out / NAMES[0] / "pred.json").stat().st_mtime_ns

    rerun = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "3 done, 1 skipped (finished before), 0 failed" in rerun.stdout
    assert (out / NAMES[0]).stat().st_ino == inode  # not recomputed
    assert (out / NAMES[0] / "pred.json").stat().st_mtime_ns == mtime
    records = read_records(manifest_files(out))
    assert [(r.video, r.status) for r in records] == [(n, "done") for n in NAMES]
    assert records[0] == first[0]
    assert_same_outputs(out, reference)  # equal to the uninterrupted run
