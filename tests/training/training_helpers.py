"""Helpers of the training tests: the smoke recipe pointed at a synthetic benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vidpan.data.synthetic import SyntheticDataset
from vidpan.training.config import TrainConfig, load_train_configs


def smoke_config(
    synth: SyntheticDataset, out: Path, stage: str, overrides: Sequence[str] = ()
) -> TrainConfig:
    """The smoke recipe's ``stage`` on the session's synthetic benchmark, writing under ``out``."""
    (cfg,) = load_train_configs(
        "smoke_tiny",
        stage=stage,
        overrides=[
            f"data.vipseg_root={synth.vipseg_root}",
            f"data.vspw_root={synth.vspw_root}",
            f"output.dir={out}",
            *overrides,
        ],
    )
    return cfg
