"""torchrun with 2 CPU processes on one list: each rank takes its shard, rank 0 merges the
manifests, and the union of the outputs equals the serial run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from batch_helpers import FAST, NAMES, assert_same_outputs, free_port, subprocess_env

from vidpan.batch.manifest import manifest_files, read_records


def test_torchrun_two_ranks(
    videos: Path, reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), "-m", "vidpan", "segment", "--video-list", str(videos),
        "--out", str(out), *FAST,
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 done, 0 skipped" in proc.stdout  # rank 0's table covers both ranks
    assert_same_outputs(out, reference)
    assert [p.name for p in manifest_files(out)] == ["manifest.jsonl"]  # rank files merged
    records = read_records(manifest_files(out))
    assert sorted((r.video, r.status) for r in records) == [(n, "done") for n in NAMES]
    by_rank = {r.video: r.worker.rsplit(":", 1)[1] for r in records}
    assert by_rank == {NAMES[0]: "rank0", NAMES[1]: "rank1", NAMES[2]: "rank0", NAMES[3]: "rank1"}
    # A later serial run of the same batch finds everything finished.
    from vidpan.cli.main import main

    assert main(["segment", "--video-list", str(videos), "--out", str(out), *FAST]) == 0
    assert "0 done, 4 skipped" in capsys.readouterr().out
