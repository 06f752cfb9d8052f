"""``vidpan train``: train one stage of a recipe, or all of them in order.

    vidpan train --config vipseg_vitg --stage tracker --set data.vipseg_root=/data/VIPSeg_720P
    torchrun --nproc_per_node 8 -m vidpan train --config vipseg_vitg --stage tracker ...

``--config`` is a YAML path or a bundled recipe name (``src/vidpan/configs/recipes``). Without
``--stage`` every stage of the recipe runs in order, each starting from the model the previous one
exported; with ``--resume`` a stage continues from its newest checkpoint and, when all stages run,
stages that already exported their model are skipped. ``--dry-run`` runs one optimizer step of
every stage at the recipe's model size on a small synthetic benchmark, on CPU, and prints per stage
the trainable parameters, time and peak memory (``vidpan.training.dry_run``). See docs/training.md.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vidpan.errors import InputError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a stage of a recipe (segmenter, tracker, refiner, fine-tunes)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, help="recipe name (e.g. vipseg_vitg, smoke_tiny) or YAML path")
    p.add_argument("--stage", help="the stage to train (default: every stage of the recipe, in order)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint of the stage")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. solver.max_iter=1000 (repeatable)")  # fmt: skip
    p.add_argument("--out", type=Path, help="output root (same as --set output.dir=DIR)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true",
                   help="one optimizer step per stage on a synthetic benchmark, on CPU, real model size "
                        "(random init); prints parameters, time and peak memory per stage")  # fmt: skip
    p.add_argument("--preset", help="--dry-run only: the recipe on this preset's ViT and adapter (e.g. vitl)")
    p.add_argument("--crop", type=int, default=64, help="--dry-run only: image / crop size (default 64)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vidpan.training.config import FINAL_MODEL_NAME, load_train_configs
    from vidpan.training.distributed import init_distributed, shutdown
    from vidpan.training.evaluation import make_evaluator
    from vidpan.training.trainer import Trainer, preflight

    if args.dry_run:
        return _dry_run(args)
    if args.preset is not None:
        raise InputError("--preset is a --dry-run option (a recipe's model is set by its `base:`)")
    overrides = list(args.overrides)
    if args.out is not None:
        overrides.append(f"output.dir={args.out}")
    if args.no_progress:
        overrides.append("output.progress=false")
    configs = load_train_configs(args.config, stage=args.stage, overrides=overrides)
    run_all = args.stage is None and len(configs) > 1
    main = os.environ.get("RANK", "0") == "0"
    devices = {cfg.device for cfg in configs}
    if len(devices) > 1:
        raise InputError(f"device: the stages ask for different devices {sorted(devices)}; use one")
    # Every stage's inputs and evaluation hook are checked before the first one trains.
    for cfg in configs:
        preflight(cfg)
    evaluators = [make_evaluator(cfg) for cfg in configs]
    # One process group for all the stages of this command (torchrun starts the processes once).
    ctx = init_distributed(configs[0].device)
    try:
        for cfg, evaluate in zip(configs, evaluators, strict=True):
            if run_all and args.resume and (cfg.run_dir / FINAL_MODEL_NAME).is_file():
                if main:
                    print(
                        f"stage {cfg.stage.name}: already trained ({cfg.run_dir / FINAL_MODEL_NAME}), skipped"
                    )
                continue
            try:
                result = Trainer(cfg, resume=args.resume, evaluate=evaluate, dist_ctx=ctx).run()
            except FloatingPointError as exc:  # non-finite loss or matching cost: one line, exit 2
                raise InputError(f"training stopped: {exc}") from None
            if main:
                print(
                    f"stage {cfg.stage.name or cfg.name}: {result.iteration} iterations -> {result.final_model}"
                )
    finally:
        shutdown(ctx)
    return 0


def _dry_run(args: argparse.Namespace) -> int:
    from vidpan.training.dry_run import format_table, run_dry_run

    if args.resume:
        raise InputError("--dry-run and --resume do not go together")
    reports = run_dry_run(
        args.config,
        stage=args.stage,
        overrides=args.overrides,
        preset=args.preset,
        crop=args.crop,
        out_dir=args.out,
    )
    print()
    print(f"dry run of {args.config}: {len(reports)} stages, one optimizer step each, freezing checked")
    print(format_table(reports))
    return 0
