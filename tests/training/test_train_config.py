"""Training configs and recipes: every bundled recipe resolves, the seed's numbers are the paper's,
unknown keys name their full path, stage references and the resolved config round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidpan.config import from_dict, save_yaml, to_dict
from vidpan.errors import InputError
from vidpan.training.config import (
    TrainConfig,
    load_train_configs,
    recipe_names,
    recipe_stage_names,
    resolve_init,
    validate_train_config,
)


def test_bundled_recipes() -> None:
    assert {"smoke_tiny", "vipseg_vitg", "vspw_vitg", "vipseg_vitl"} <= set(recipe_names())
    for name in recipe_names():
        for cfg in load_train_configs(name):
            validate_train_config(cfg)
            assert cfg.run_dir == Path(cfg.output.dir) / cfg.stage.name


def _stages(name: str) -> dict[str, TrainConfig]:
    return {c.stage.name: c for c in load_train_configs(name)}


def test_seed_recipe_numbers() -> None:
    """reference/seed_paper.md §3.2 (lines 130-145)."""
    assert recipe_stage_names("vipseg_vitg") == ["coco", "segmenter", "tracker", "refiner", "finetune", "vss"]
    s = _stages("vipseg_vitg")
    for cfg in s.values():
        assert cfg.model.decoder.num_queries == 200
        assert cfg.model.vit.embed_dim == 1536 and cfg.model.vit.depth == 40 and cfg.model.vit.frozen
        assert cfg.data.augmentation.short_side_sampling == "range"
        assert cfg.data.augmentation.short_sides == (480, 1080)
        if cfg.stage.name == "vss":
            continue
        sv = cfg.solver
        assert (sv.optimizer, sv.weight_decay, sv.backbone_multiplier, sv.clip_grad_norm) == (
            "adamw",
            0.05,
            0.1,
            0.01,
        )
        assert (sv.warmup_iters, sv.warmup_factor) == (10, 1.0) and sv.precision == "bf16"
    coco = s["coco"]
    assert (coco.data.dataset, coco.solver.clips_per_batch, coco.solver.base_lr) == ("coco", 16, 1e-4)
    assert coco.solver.max_iter == 368750  # 50 epochs x 118k images / 16
    assert coco.stage.init.endswith("dinov2_vitg14.safetensors")
    seg = s["segmenter"]
    assert (seg.stage.kind, seg.stage.init, seg.data.sampling.num_frames) == ("segmenter", "stage:coco", 1)
    assert (seg.solver.clips_per_batch, seg.solver.base_lr, seg.solver.max_iter) == (16, 1e-4, 20000)
    assert (seg.solver.steps, seg.solver.gamma) == ((14000,), 0.1)
    assert seg.stage.init_reset == ("segmenter.decoder.class_embed.",)
    trk = s["tracker"]
    assert (trk.stage.kind, trk.stage.init) == ("tracker", "stage:segmenter")
    assert (trk.data.sampling.num_frames, trk.data.sampling.frame_range) == (5, 2)  # consecutive
    assert trk.model.tracker.noise_mode == "none"  # §2: no Noiser (tests/training/test_seed_recipe.py)
    assert (trk.solver.clips_per_batch, trk.solver.base_lr, trk.solver.max_iter) == (8, 1e-4, 40000)
    assert (trk.solver.steps, trk.solver.gamma) == ((28000,), 0.5)
    ref = s["refiner"]
    assert (ref.stage.kind, ref.stage.init) == ("refiner", "stage:tracker")
    assert (ref.data.sampling.num_frames, ref.data.sampling.frame_range, ref.data.sampling.reverse) == (
        21,
        10,
        True,
    )
    assert (ref.solver.clips_per_batch, ref.solver.max_iter, ref.solver.steps, ref.solver.gamma) == (
        8,
        40000,
        (28000,),
        0.5,
    )
    assert ref.data.augmentation.crop_size == (604, 604)
    fin = s["finetune"]
    assert (fin.stage.kind, fin.stage.init, fin.data.augmentation.crop_size) == (
        "refiner",
        "stage:refiner",
        (840, 840),
    )
    assert (fin.solver.clips_per_batch, fin.solver.base_lr, fin.solver.max_iter, fin.solver.steps) == (
        8,
        2.5e-5,
        10000,
        (7000,),
    )
    (vss,) = load_train_configs("vspw_vitg")
    assert (vss.stage.kind, vss.data.dataset, vss.inference.task) == ("refiner", "vspw", "vss")
    assert (vss.solver.clips_per_batch, vss.solver.base_lr, vss.solver.max_iter, vss.solver.steps) == (
        8,
        2.5e-5,
        10000,
        (7000,),
    )
    assert vss.stage.init == "runs/vipseg_vitg/finetune/model_final.safetensors"


def test_stage_references_resolve_to_the_earlier_export(tmp_path: Path) -> None:
    s = {c.stage.name: c for c in load_train_configs("smoke_tiny", overrides=[f"output.dir={tmp_path}"])}
    assert resolve_init(s["segmenter"]) is None
    assert resolve_init(s["tracker"]) == tmp_path / "segmenter" / "model_final.safetensors"
    assert resolve_init(s["vss"]) == tmp_path / "finetune" / "model_final.safetensors"
    (one,) = load_train_configs("smoke_tiny", stage="refiner")
    assert one.stage.name == "refiner" and one.data.sampling.num_frames == 5


def test_overrides_apply_to_every_stage_and_are_validated() -> None:
    cfgs = load_train_configs("smoke_tiny", overrides=["solver.base_lr=1e-3", "seed=7"])
    assert {c.solver.base_lr for c in cfgs} == {1e-3}  # "1e-3" is a YAML string; read as a number
    assert {c.seed for c in cfgs} == {7}
    with pytest.raises(InputError, match=r"solver\.base_lrr: unknown key"):
        load_train_configs("smoke_tiny", overrides=["solver.base_lrr=1"])
    with pytest.raises(InputError, match=r"solver\.precision: expected one of"):
        load_train_configs("smoke_tiny", overrides=["solver.precision=fp8"])


def test_yaml_errors_name_file_stage_and_path(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text("base: tiny\ndata: {augmentation: {crop: [1, 2]}}\n")
    with pytest.raises(
        InputError, match=r"r\.yaml: data\.augmentation\.crop: unknown key \(expected one of: .*crop_size"
    ):
        load_train_configs(f)
    f.write_text("base: tiny\nstages:\n  one: {solver: {max_iter: many}}\n")
    with pytest.raises(InputError, match=r"stages\.one: solver\.max_iter: expected an integer"):
        load_train_configs(f)
    f.write_text("base: tiny\nstages: [a, b]\n")
    with pytest.raises(InputError, match="non-empty mapping"):
        load_train_configs(f)
    f.write_text("base: tiny\nsolver: {max_iter: 3}\n")
    (single,) = load_train_configs(f)  # no stages: one stage in output.dir itself
    assert single.stage.name == "" and single.run_dir == Path(single.output.dir)
    with pytest.raises(InputError, match="no `stages:` section"):
        load_train_configs(f, stage="tracker")


def test_resolved_config_round_trips_through_yaml(tmp_path: Path) -> None:
    import yaml

    cfg = load_train_configs("vipseg_vitg", stage="finetune")[0]
    save_yaml(cfg, tmp_path / "config.yaml")
    again = from_dict(TrainConfig, yaml.safe_load((tmp_path / "config.yaml").read_text()))
    assert again == cfg
    assert to_dict(again)["stage"] == {
        "kind": "refiner",
        "name": "finetune",
        "init": "stage:refiner",
        "init_reset": [],
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("solver.max_iter=0", "solver.max_iter"),
        ("solver.steps=[5, 5]", "solver.steps"),
        ("solver.clips_per_batch=0", "solver.clips_per_batch"),
        ("solver.warmup_factor=0", "solver.warmup_factor"),
        ("output.log_period=0", "output.log_period"),
        ("device=tpu", "device"),
    ],
)
def test_validation(override: str, message: str) -> None:
    (cfg,) = load_train_configs("smoke_tiny", stage="segmenter", overrides=[override])
    with pytest.raises(InputError, match=message):
        validate_train_config(cfg)
