"""Two-process DDP on CPU (gloo): the global batch is split across ranks, the loss normaliser is
averaged over them, and gradients and parameters are identical on both ranks after each step."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from training_helpers import smoke_config

from vidpan.data.synthetic import SyntheticDataset

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, port: int, synth: SyntheticDataset, out: Path, stage: str, init: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    from vidpan.training import distributed as D
    from vidpan.training.trainer import Trainer

    overrides = ["solver.clips_per_batch=4", "solver.max_iter=2"]
    if init:
        overrides.append(f"stage.init={init}")
    cfg = smoke_config(synth, out / "run", stage, overrides)
    ctx = D.init_distributed("cpu")
    try:
        trainer = Trainer(cfg, dist_ctx=ctx)
        batches = trainer.batches()
        steps = []
        for _ in range(2):
            batch = trainer.prepare(next(batches))
            local_masks = sum(t.labels.numel() for t in batch.targets) * batch.frames_per_clip
            result = trainer.train_step(batch)
            named = {n: p for g in trainer.groups for n, p in zip(g.names, g.params, strict=True)}
            steps.append(
                {
                    "videos": batch.video_ids,
                    "local_masks": local_masks,
                    "num_masks": result.loss.num_masks,
                    "grads": {n: p.grad.clone() for n, p in named.items() if p.grad is not None},
                    "params": {n: p.detach().clone() for n, p in named.items()},
                }
            )
        torch.save(
            {"world": ctx.world_size, "per_rank": trainer.per_rank_batch, "steps": steps},
            out / f"rank{rank}.pt",
        )
    finally:
        D.shutdown(ctx)


def _run(synth: SyntheticDataset, tmp_path: Path, stage: str, init: str = "") -> list[dict]:
    mp.spawn(_worker, args=(_free_port(), synth, tmp_path, stage, init), nprocs=WORLD, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _check_synchronised(results: list[dict], *, image_level: bool) -> None:
    assert [r["world"] for r in results] == [WORLD, WORLD]
    assert [r["per_rank"] for r in results] == [2, 2]  # 4 clips per step split over 2 ranks
    for step in range(2):
        a, b = (r["steps"][step] for r in results)
        assert len(a["videos"]) == len(b["videos"]) == 2
        assert a["videos"] != b["videos"], "the ranks must read different clips"
        expected = (a["local_masks"] + b["local_masks"]) / WORLD
        assert a["num_masks"] == b["num_masks"] == pytest.approx(max(expected, 1.0))
        assert a["grads"].keys() == b["grads"].keys() and a["grads"]
        for name in a["grads"]:
            assert torch.equal(a["grads"][name], b["grads"][name]), f"step {step}: gradient of {name} differs"
        for name in a["params"]:
            assert torch.equal(a["params"][name], b["params"][name]), f"step {step}: {name} differs"
        if image_level:  # every trained parameter got a gradient (the re-id branch is frozen)
            assert a["grads"].keys() == a["params"].keys()


def test_ddp_segmenter_gradients_are_synchronised(synth: SyntheticDataset, tmp_path: Path) -> None:
    _check_synchronised(_run(synth, tmp_path, "segmenter"), image_level=True)


def _resume_worker(rank: int, port: int, synth: SyntheticDataset, out: Path) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    from vidpan.training import distributed as D
    from vidpan.training.trainer import Trainer

    common = ["solver.clips_per_batch=2", "solver.max_iter=4", "output.checkpoint_period=2", "stage.init="]
    ctx = D.init_distributed("cpu")
    try:
        # The tracker stage: per-rank noise and point-sampling generators.
        Trainer(smoke_config(synth, out / "straight", "tracker", common), dist_ctx=ctx).run()
        cfg = smoke_config(synth, out / "resumed", "tracker", common)
        first = Trainer(cfg, dist_ctx=ctx)
        batches = first.batches()
        for _ in range(2):
            first.train_step(first.prepare(next(batches)))
        first.save()
        Trainer(cfg, resume=True, dist_ctx=ctx).run()
    finally:
        D.shutdown(ctx)


def test_ddp_exact_resume(synth: SyntheticDataset, tmp_path: Path) -> None:
    from vidpan.training.metrics import read_metrics

    mp.spawn(_resume_worker, args=(_free_port(), synth, tmp_path), nprocs=WORLD, join=True)
    keys = ("loss", "loss_ce", "loss_mask", "loss_dice", "grad_norm")
    straight = {r["iteration"]: [r[k] for k in keys] for r in read_metrics(tmp_path / "straight" / "tracker")}
    resumed = {r["iteration"]: [r[k] for k in keys] for r in read_metrics(tmp_path / "resumed" / "tracker")}
    assert sorted(resumed) == [3, 4]
    assert [straight[3], straight[4]] == [resumed[3], resumed[4]]


@pytest.mark.slow
def test_torchrun_cli_two_processes(synth: SyntheticDataset, tmp_path: Path) -> None:
    """The documented command line: ``torchrun --nproc_per_node 2 -m vidpan train ...``, every stage of
    the smoke recipe in one process group."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun is not None
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
    }
    cmd = [
        torchrun,
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "vidpan",
        "train",
        "--config",
        "smoke_tiny",
        "--set",
        f"data.vipseg_root={synth.vipseg_root}",
        "--set",
        f"data.vspw_root={synth.vspw_root}",
        "--set",
        "solver.max_iter=2",
        "--out",
        str(tmp_path / "runs"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for stage in ("segmenter", "tracker", "refiner", "finetune", "vss"):
        assert (tmp_path / "runs" / stage / "model_final.safetensors").is_file()
        assert (tmp_path / "runs" / stage / "checkpoints" / "last").is_file()
    assert proc.stderr.count("(1 per process x 2)") == 5
