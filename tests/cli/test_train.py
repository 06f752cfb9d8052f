"""``vidpan train``: the whole smoke recipe end to end, ``--resume``, and bad input that must fail
with exit code 2 before anything is trained."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from vidpan.cli.main import main
from vidpan.data.synthetic import SyntheticDataset, generate
from vidpan.models.build import load_pretrained
from vidpan.training.metrics import read_metrics

STAGES = ("segmenter", "tracker", "refiner", "finetune", "vss")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Two test workers share two cores in CI; more threads only slow the tiny model down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return generate(tmp_path_factory.mktemp("synth") / "bench", videos=6, frames=8, size=(64, 96), seed=0)


def _args(synth: SyntheticDataset, out: Path, *extra: str, vipseg: Path | None = None) -> list[str]:
    return [
        "train",
        "--config",
        "smoke_tiny",
        "--set",
        f"data.vipseg_root={vipseg or synth.vipseg_root}",
        "--set",
        f"data.vspw_root={synth.vspw_root}",
        "--out",
        str(out),
        *extra,
    ]


def test_every_stage_of_the_smoke_recipe(
    synth: SyntheticDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    assert main(_args(synth, out)) == 0
    parts = {"segmenter": {"segmenter"}, "tracker": {"segmenter", "tracker"}}
    for stage in STAGES:
        run = out / stage
        records = read_metrics(run)
        assert [r["iteration"] for r in records] == list(range(1, len(records) + 1)) and records
        assert all(r["loss"] > 0 for r in records)
        assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last").is_file()
        config, model = load_pretrained(run / "model_final.safetensors")
        assert set(model.parts) == parts.get(stage, {"segmenter", "tracker", "refiner"})
        assert config.model.num_classes == 16 and len(config.model.class_names) == 16
        assert config.model.class_names[0] == "person"  # things first
    assert load_pretrained(out / "vss" / "model_final.safetensors")[0].inference.task == "vss"
    assert load_pretrained(out / "segmenter" / "model_final.safetensors")[0].inference.mode == "online"
    capsys.readouterr()
    # --resume over a finished recipe skips every stage.
    assert main(_args(synth, out, "--resume")) == 0
    assert capsys.readouterr().out.count("already trained") == len(STAGES)


def test_resume_continues_a_stage(synth: SyntheticDataset, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    assert main(_args(synth, out, "--stage", "segmenter", "--set", "solver.max_iter=2")) == 0
    # Re-running without --resume would overwrite: refused.
    assert main(_args(synth, out, "--stage", "segmenter", "--set", "solver.max_iter=4")) == 2
    assert main(_args(synth, out, "--stage", "segmenter", "--set", "solver.max_iter=4", "--resume")) == 0
    assert [r["iteration"] for r in read_metrics(out / "segmenter")] == [1, 2, 3, 4]


def _copy_vipseg(synth: SyntheticDataset, tmp_path: Path) -> Path:
    root = tmp_path / "VIPSeg"
    shutil.copytree(synth.vipseg_root, root)
    return root


def _fails(args: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("vidpan train: error:"), err
    for needle in needles:
        assert needle in err, err


def test_missing_dataset_file(
    synth: SyntheticDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy_vipseg(synth, tmp_path)
    victim = sorted((root / "images").rglob("*.jpg"))[3]
    victim.unlink()
    out = tmp_path / "runs"
    _fails(_args(synth, out, "--stage", "segmenter", vipseg=root), capsys, "image files missing", victim.name)
    assert not out.exists()  # nothing was started


def test_empty_split(synth: SyntheticDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy_vipseg(synth, tmp_path)
    data = json.loads((root / "panoptic_gt_VIPSeg_train.json").read_text())
    (root / "panoptic_gt_VIPSeg_empty.json").write_text(
        json.dumps({"videos": [], "annotations": [], "categories": data["categories"]})
    )
    args = _args(synth, tmp_path / "runs", "--stage", "segmenter", "--set", "data.split=empty", vipseg=root)
    _fails(args, capsys, "split 'empty' has no videos")


def test_clip_longer_than_the_videos(
    synth: SyntheticDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    strict = ["--set", "data.sampling.num_frames=9", "--set", "data.sampling.frame_range=4"]
    args = _args(
        synth, tmp_path / "runs", "--stage", "refiner", *strict, "--set", "data.sampling.strict=true"
    )
    _fails(args, capsys, "clips of 9 frames requested with strict sampling", "(8 frames)")


def test_mistyped_keys(synth: SyntheticDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs"
    _fails(
        _args(synth, out, "--set", "solver.max_iters=3"), capsys, "solver.max_iters: unknown key", "max_iter"
    )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("base: tiny\nstages:\n  seg:\n    solver: {maxiter: 3}\n")
    _fails(["train", "--config", str(recipe)], capsys, "stages.seg: solver.maxiter: unknown key")
    recipe.write_text("base: tiny\nstages:\n  a: {stage: {init: 'stage:b'}}\n  b: {}\n")
    _fails(
        ["train", "--config", str(recipe)],
        capsys,
        "stages.a: stage.init: 'stage:b' must name an earlier stage",
    )
    _fails(["train", "--config", "no_such_recipe"], capsys, "unknown recipe 'no_such_recipe'", "smoke_tiny")


def test_unknown_stage(synth: SyntheticDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(_args(synth, tmp_path / "r", "--stage", "trackr"), capsys, "unknown stage 'trackr'", "tracker")


def test_later_stage_errors_stop_the_run_before_training(
    synth: SyntheticDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    args = _args(synth, out)
    args[args.index(f"data.vspw_root={synth.vspw_root}")] = f"data.vspw_root={tmp_path / 'nowhere'}"
    _fails(args, capsys, "data.vspw_root: dataset root is not a directory")
    assert not out.exists()


def test_missing_init_and_bad_settings(
    synth: SyntheticDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    _fails(
        _args(synth, out, "--stage", "tracker"),
        capsys,
        "checkpoint not found (train stage 'segmenter' first)",
    )
    _fails(
        _args(synth, out, "--stage", "segmenter", "--set", f"stage.init={tmp_path / 'nope.safetensors'}"),
        capsys,
        "stage.init: checkpoint not found",
    )
    _fails(
        _args(synth, out, "--stage", "segmenter", "--set", "solver.precision=fp16"),
        capsys,
        "fp16 needs a CUDA device",
    )
    _fails(
        _args(synth, out, "--stage", "segmenter", "--set", "model.num_classes=124"), capsys, "16 categories"
    )
    _fails(_args(synth, out, "--stage", "segmenter", "--set", "solver.steps=[3, 2]"), capsys, "solver.steps")
    _fails(
        _args(synth, out, "--stage", "tracker", "--set", "data.sampling.num_frames=1"),
        capsys,
        "at least 2 frames",
    )
