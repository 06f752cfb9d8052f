"""``vidpan train --config C --dry-run``: one optimizer step of every stage, at full model size, on CPU.

Every stage of the recipe runs through the real training path — the dataset loader of its kind
(COCO panoptic, VIPSeg, VSPW), the stage's parts built at the recipe's size, init weights from the
previous stage's export, freezing, AdamW, backward, clipping, the export the next stage reads —
for exactly one iteration, on a small synthetic benchmark written for the run
(:func:`vidpan.data.synthetic.generate` with its COCO output):

- data: ``videos`` synthetic videos of ``frames`` frames (one train, one val), every root of the
  recipe pointed at it, the class counts set to the benchmark's (16 categories, 8 things) in every
  stage (the coco stage included: the synthetic COCO has the same categories);
- size: the recipe's model unchanged (random init: the first stage's DINOv2 init file is replaced
  by random weights, so are the weights of a stage whose ``stage:`` init is not part of the run);
  the stage's clip length, sampling and schedule kept; one clip per step; the images resized to a
  short side of ``crop`` and cropped to ``crop`` x ``crop`` (default 64, the smallest useful crop:
  a 2 x 2 map at 1/32; ``--crop 604`` is the recipe's, padded to 608 as in training); fp32 on CPU;
- per stage, in a fresh process (so each peak is the stage's own): trainable / total parameters,
  wall time (build + step + export) and the step's own time, peak resident memory, the loss — and
  the freezing checked: every parameter and buffer of the frozen parts (the ViT always, the
  segmenter when the tracker trains, segmenter + tracker when the refiner trains) is bit-identical
  after the step (fingerprinted in float64), the trained part changed, ``requires_grad`` is False
  on every frozen parameter and the trained-parameter count is the trained parts' minus their
  frozen prefixes.

Nothing is kept unless ``out_dir`` is given (then each stage's export is deleted once the next
stage has read it, to bound the disk use at ViT-g size: ~4.6 GB per export).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidpan.config import configs_dir, read_yaml
from vidpan.errors import InputError
from vidpan.training.config import STAGE_REF_PREFIX, TrainConfig, load_train_configs, recipe_stage_names

DEFAULT_CROP = 64


@dataclass(frozen=True)
class StageReport:
    """One stage of a dry run."""

    stage: str
    kind: str
    trained: tuple[str, ...]
    frozen: tuple[str, ...]  # parts checked unchanged ("vit" = the segmenter's ViT)
    trainable_params: int
    total_params: int
    seconds: float  # build + one step + export, in the stage's process
    step_seconds: float  # the optimizer step alone (forward, backward, clip, update)
    peak_rss_gb: float  # the stage process's peak resident memory
    loss: float
    init: str  # where the weights came from


def preset_overrides(preset: str) -> list[str]:
    """``--set`` overrides that put a model preset's ViT and adapter into a recipe."""
    data = read_yaml(configs_dir() / "presets" / f"{preset}.yaml")
    out = []
    for section in ("vit", "adapter"):
        for key, value in data.get("model", {}).get(section, {}).items():
            out.append(f"model.{section}.{key}={_yaml(value)}")
    return out


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_yaml(v) for v in value) + "]"
    return str(value)


def dry_run_configs(
    recipe: str, root: Path, synth: Path, *, stage: str | None, crop: int, overrides: Sequence[str]
) -> list[TrainConfig]:
    """The recipe's stages as the dry run trains them (see the module docstring)."""
    names = recipe_stage_names(recipe)
    if not names:
        raise InputError(f"--dry-run needs a recipe with `stages:` ({recipe!r} is a single-stage config)")
    run = [stage] if stage is not None else names
    common = [
        f"data.vipseg_root={synth / 'VIPSeg'}",
        f"data.vspw_root={synth / 'VSPW'}",
        f"data.coco_root={synth / 'coco'}",
        "model.num_classes=16",
        "model.num_things=8",
        f"data.augmentation.short_sides=[{crop}]",
        "data.augmentation.short_side_sampling=choice",
        f"data.augmentation.crop_size=[{crop},{crop}]",
        "data.num_workers=0",
        "solver.max_iter=1",
        "solver.steps=[]",
        "solver.clips_per_batch=1",
        "solver.precision=fp32",
        "output.log_period=1",
        "output.progress=false",
        "output.tensorboard=false",
        "eval.period=0",
        "device=cpu",
        f"output.dir={root}",
    ]
    configs = []
    for name in run:
        (cfg,) = load_train_configs(recipe, stage=name, overrides=[*common, *overrides])
        split = "train2017" if cfg.data.dataset == "coco" else "train"
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, split=split))
        init = cfg.stage.init
        earlier = (
            init.startswith(STAGE_REF_PREFIX) and init[len(STAGE_REF_PREFIX) :] in run[: run.index(name)]
        )
        if not earlier:  # the DINOv2 file, or a stage that is not part of this run: random weights
            cfg = dataclasses.replace(cfg, stage=dataclasses.replace(cfg.stage, init="", init_reset=()))
        configs.append(cfg)
    return configs


def _fingerprint(module: Any) -> tuple[float, float]:
    """(Σ x, Σ x²) over every parameter and floating buffer, in float64: changes on any update."""
    import torch

    total = square = 0.0
    with torch.no_grad():
        for t in [*module.parameters(), *(b for b in module.buffers() if b.is_floating_point())]:
            x = t.detach().double()
            total += float(x.sum())
            square += float(x.square().sum())
    return total, square


def run_stage(cfg: TrainConfig) -> StageReport:
    """Train one dry-run stage for one step in this process and check its freezing."""
    import torch

    from vidpan.training.stages import stage_spec
    from vidpan.training.trainer import Trainer

    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    trainer = Trainer(cfg, save_checkpoints=False)
    model, spec = trainer.model, stage_spec(cfg.stage.kind)
    parts: dict[str, Any] = {"vit": model.segmenter.backbone.vit}
    for part in spec.frozen:
        parts[part] = getattr(model, part)
    before = {name: _fingerprint(m) for name, m in parts.items()}
    trained = {p: _fingerprint(getattr(model, p)) for p in spec.trained}
    frozen_params = [p for m in parts.values() for p in m.parameters()]
    if any(p.requires_grad for p in frozen_params):
        raise AssertionError(f"stage {cfg.stage.name}: a frozen parameter requires grad")
    expected = sum(
        p.numel()
        for part in spec.trained
        for n, p in getattr(model, part).named_parameters(prefix=part)
        if not n.startswith(spec.frozen_prefixes) and not n.startswith("segmenter.backbone.vit.")
    )
    n_trained = sum(p.numel() for p in trainer.trained_params)
    if n_trained != expected:
        raise AssertionError(f"stage {cfg.stage.name}: {n_trained} trained parameters, expected {expected}")
    result = trainer.run()
    for name, m in parts.items():
        if _fingerprint(m) != before[name]:
            raise AssertionError(f"stage {cfg.stage.name}: the frozen {name} changed in the step")
    for name, fp in trained.items():
        if _fingerprint(getattr(model, name)) == fp:
            raise AssertionError(f"stage {cfg.stage.name}: the trained {name} did not change")
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return StageReport(
        stage=cfg.stage.name,
        kind=cfg.stage.kind,
        trained=spec.trained,
        frozen=tuple(parts),
        trainable_params=n_trained,
        total_params=sum(p.numel() for p in model.parameters()),
        seconds=seconds,
        step_seconds=float(result.last_record.get("time", float("nan"))),
        peak_rss_gb=peak_kb * 1024 / 1e9,
        loss=float(result.last_record.get("loss", float("nan"))),
        init=cfg.stage.init or "random",
    )


def _child(cfg: TrainConfig, queue: Any) -> None:
    try:
        from vidpan.utils.allocator import tune_malloc

        tune_malloc()
        queue.put(("ok", run_stage(cfg)))
    except BaseException as exc:  # reported by the parent
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def _isolated(cfg: TrainConfig) -> StageReport:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(cfg, queue))
    proc.start()
    status, payload = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"dry run, stage {cfg.stage.name}: {payload}")
    return payload


@contextlib.contextmanager
def _workdir(out_dir: str | Path | None) -> Iterator[Path]:
    if out_dir is not None:
        path = Path(out_dir)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="vidpan-dry-run-") as tmp:
        yield Path(tmp)


def run_dry_run(
    recipe: str,
    *,
    stage: str | None = None,
    overrides: Sequence[str] = (),
    preset: str | None = None,
    crop: int = DEFAULT_CROP,
    frames: int = 21,
    out_dir: str | Path | None = None,
    isolate: bool = True,
    echo: bool = True,
) -> list[StageReport]:
    """Run the dry run (module docstring); returns one report per stage, in order.

    Args:
        preset: put this model preset's ViT and adapter into the recipe (e.g. ``vitl``).
        isolate: each stage in a fresh process (per-stage peak memory); False runs in this one.
        echo: print each stage's line as it finishes.
    """
    from vidpan.data.synthetic import generate

    if crop < 32:
        raise InputError(f"--crop: expected at least 32 pixels, got {crop}")
    extra = [*(preset_overrides(preset) if preset else []), *overrides]
    reports: list[StageReport] = []
    with _workdir(out_dir) as work:
        synth = work / "synthetic"
        if not (synth / "manifest.json").is_file():
            generate(
                synth,
                videos=2,
                frames=frames,
                size=(crop, crop * 3 // 2),
                seed=0,
                val_fraction=0.5,
                coco=True,
            )
        root = work / "runs"
        configs = dry_run_configs(recipe, root, synth, stage=stage, crop=crop, overrides=extra)
        if echo:
            print(HEADER)
        for i, cfg in enumerate(configs):
            report = _isolated(cfg) if isolate else run_stage(cfg)
            reports.append(report)
            if echo:
                print(format_row(report), flush=True)
            if i > 0:  # the previous export has been read: free the disk (4.6 GB at ViT-g size)
                prev = root / configs[i - 1].stage.name
                shutil.rmtree(prev, ignore_errors=True)
    return reports


HEADER = (
    f"{'stage':<10} {'kind':<9} {'trained':<9} {'frozen (checked unchanged)':<26} {'trainable':>13} "
    f"{'total':>15} {'time s':>8} {'step s':>8} {'peak GB':>8} {'loss':>8}"
)


def format_row(r: StageReport) -> str:
    return (
        f"{r.stage:<10} {r.kind:<9} {','.join(r.trained):<9} {','.join(r.frozen):<26} "
        f"{r.trainable_params:>13,} {r.total_params:>15,} {r.seconds:>8.1f} {r.step_seconds:>8.1f} "
        f"{r.peak_rss_gb:>8.2f} {r.loss:>8.3f}"
    )


def format_table(reports: Sequence[StageReport]) -> str:
    return "\n".join([HEADER, *(format_row(r) for r in reports)])


if __name__ == "__main__":  # pragma: no cover - python -m vidpan.training.dry_run RECIPE
    run_dry_run(sys.argv[1] if len(sys.argv) > 1 else "vipseg_vitg")
