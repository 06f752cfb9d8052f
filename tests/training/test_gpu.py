"""CUDA checks (marked ``gpu``, excluded by default): AMP with fp16 (GradScaler) and bf16 on the
smoke recipe, point sampling on a CUDA generator, and exact resume on the GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_helpers import smoke_config

from vidpan.data.synthetic import SyntheticDataset
from vidpan.training.metrics import read_metrics
from vidpan.training.trainer import Trainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp32"])
def test_cuda_stages_with_amp(precision: str, synth: SyntheticDataset, tmp_path: Path) -> None:
    common = ["device=cuda", f"solver.precision={precision}", "solver.max_iter=3"]
    seg = smoke_config(synth, tmp_path, "segmenter", common)
    result = Trainer(seg).run()
    assert result.iteration == 3
    trk = smoke_config(synth, tmp_path, "tracker", common)
    trainer = Trainer(trk)
    assert trainer.loss_generator.device.type == "cuda"
    assert trainer.scaler.is_enabled() == (precision == "fp16")
    trainer.run()
    assert all(r["loss"] > 0 for r in read_metrics(trk.run_dir))


def test_cuda_exact_resume(synth: SyntheticDataset, tmp_path: Path) -> None:
    common = ["device=cuda", "solver.max_iter=4", "output.checkpoint_period=2"]
    straight = smoke_config(synth, tmp_path / "a", "segmenter", common)
    Trainer(straight).run()
    part = smoke_config(synth, tmp_path / "b", "segmenter", common)
    first = Trainer(part)
    batches = first.batches()
    for _ in range(2):
        first.train_step(first.prepare(next(batches)))
    first.save()
    Trainer(part, resume=True).run()
    a = {r["iteration"]: r["loss"] for r in read_metrics(straight.run_dir)}
    b = {r["iteration"]: r["loss"] for r in read_metrics(part.run_dir)}
    assert [a[i] for i in (3, 4)] == [b[i] for i in (3, 4)]
