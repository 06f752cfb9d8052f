"""The explicit training loop of one stage: build, load, freeze, optimise, log, checkpoint, export.

Follows DVIS++'s ``train_net_video.py`` (detectron2 ``SimpleTrainer`` / ``AMPTrainer``) in what
it computes, as a plain loop (STYLE.md #14):

1. validate the config, read the dataset (every file checked), check the init checkpoint and
   the output directory — all bad input fails here, before a model is built;
2. build the parts the stage needs (:data:`vidpan.training.stages.STAGE_KINDS`), load the init
   weights, freeze the earlier stages (``requires_grad`` False, eval mode, run under ``no_grad``),
   wrap only the trained parts in ``DistributedDataParallel``;
3. AdamW with the backbone multiplier and no weight decay on norms and embeddings, warmup +
   multi-step schedule, full-model gradient clipping, AMP through ``torch.autocast`` (bf16, or
   fp16 with a ``GradScaler``) — :mod:`vidpan.training.solver`;
4. per iteration: next batch of this rank's clips, the stage's step function, backward, clip,
   step; logs every ``log_period``, an atomic checkpoint every ``checkpoint_period`` (and at the
   end), an optional evaluation callback every ``eval.period``;
5. export the whole model as a native ``model_final.safetensors`` — the next stage's init.

Resuming loads the newest complete checkpoint: the trained weights, optimizer, scheduler, scaler,
every rank's RNG states (Python, NumPy, torch CPU/CUDA, the loss and noise generators) and the
iteration, from which the data sampler's position follows; the losses after resuming equal those of
an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vidpan.config import save_yaml, to_dict
from vidpan.errors import InputError
from vidpan.losses.criterion import LossOutput
from vidpan.models.build import DVIS
from vidpan.models.checkpoint import save_native
from vidpan.training import distributed as D
from vidpan.training.checkpoints import (
    capture_rng,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    remove_partial_files,
    restore_rng,
    save_checkpoint,
    seed_globals,
)
from vidpan.training.config import (
    FINAL_MODEL_NAME,
    STAGE_REF_PREFIX,
    TrainConfig,
    resolve_init,
    validate_train_config,
)
from vidpan.training.data import build_dataset, check_class_space, clip_batches
from vidpan.training.metrics import MetricsLogger
from vidpan.training.solver import (
    autocast_dtype,
    build_optimizer,
    build_scheduler,
    clip_gradients,
    lr_factor,
    param_groups,
)
from vidpan.training.stages import (
    Batch,
    StepContext,
    build_criterion,
    build_stage_model,
    prepare_batch,
    stage_spec,
)
from vidpan.utils.atomic import check_writable_dir

Evaluator = Callable[[DVIS, int], dict[str, float]]
"""Periodic evaluation: (model in eval mode, iterations done) -> metrics to log."""

CHECKPOINT_FORMAT = "vidpan-train"
CHECKPOINT_VERSION = 1


@dataclass
class StepResult:
    """One optimisation step."""

    loss: LossOutput
    grad_norm: torch.Tensor  # [] before clipping


@dataclass
class TrainResult:
    run_dir: Path
    final_model: Path
    iteration: int
    last_record: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """One training stage (see the module docstring). ``run()`` trains to ``solver.max_iter``.

    Args:
        cfg: the resolved stage config.
        resume: continue from the newest checkpoint of ``cfg.run_dir`` if there is one.
        evaluate: optional periodic evaluation callback (rank 0), see :data:`Evaluator`.
        dist_ctx: the process group context (default: :func:`~vidpan.training.distributed.init_distributed`).
        save_checkpoints: write the resumable training checkpoints (False: only the final export,
            as the dry run does — a ViT-g checkpoint without an init file holds the 4.5 GB ViT).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        resume: bool = False,
        evaluate: Evaluator | None = None,
        dist_ctx: D.DistContext | None = None,
        save_checkpoints: bool = True,
    ) -> None:
        validate_train_config(cfg)
        self.save_checkpoints = save_checkpoints
        self.dist = dist_ctx if dist_ctx is not None else D.init_distributed(cfg.device)
        self.device = self.dist.device
        self.spec = stage_spec(cfg.stage.kind)
        self.evaluate = evaluate
        world = self.dist.world_size
        if cfg.solver.clips_per_batch % world:
            raise InputError(
                f"solver.clips_per_batch: {cfg.solver.clips_per_batch} clips cannot be split evenly over "
                f"{world} processes"
            )
        self.per_rank_batch = cfg.solver.clips_per_batch // world
        self.amp_dtype = autocast_dtype(cfg.solver.precision, self.device)

        # -- data first: every problem with the files surfaces before any model is built
        self.dataset = build_dataset(cfg.data, seed=cfg.seed, rank=self.dist.rank)
        mapping = self.dataset.source.mapping
        check_class_space(
            mapping, cfg.model.num_classes, cfg.model.num_things, where=f"data ({cfg.data.dataset})"
        )
        cfg = dataclasses.replace(
            cfg,
            model=dataclasses.replace(
                cfg.model,
                class_names=mapping.names,
                dataset_category_ids=mapping.dataset_ids,
                class_colors=mapping.colors,
            ),
        )
        self.cfg = cfg
        self.init_path = resolve_init(cfg)
        if self.init_path is not None and not self.init_path.is_file():
            hint = ""
            if cfg.stage.init.startswith(STAGE_REF_PREFIX):
                hint = f" (train stage {cfg.stage.init[len(STAGE_REF_PREFIX) :]!r} first)"
            raise InputError(f"stage.init: checkpoint not found{hint}", path=self.init_path)
        self.run_dir = cfg.run_dir
        check_writable_dir(self.run_dir)
        found = list_checkpoints(self.run_dir)
        if found and not resume:
            raise InputError(
                f"{len(found)} checkpoints already there; pass --resume to continue that run, or choose "
                "another output directory",
                path=self.run_dir,
            )
        resume_from = latest_checkpoint(self.run_dir) if resume else None
        self._resume_note = ""
        if resume and resume_from is None:
            self._resume_note = f"--resume: no checkpoint in {self.run_dir}, starting at iteration 0"

        # -- model: the stage's parts, init weights, frozen parts, criterion
        built = build_stage_model(cfg, self.spec, self.init_path)
        self.init_lines = built.init_lines
        self._checkpoint_skip = built.checkpoint_skip
        model = built.model
        if self.dist.distributed and self.device.type == "cuda" and "segmenter" in self.spec.trained:
            model.segmenter = nn.SyncBatchNorm.convert_sync_batchnorm(model.segmenter)  # DVIS++ uses SyncBN
        self.model = model.to(self.device)
        self.criterion = build_criterion(cfg.loss, cfg.model.num_classes).to(self.device)

        # -- optimisation
        self.groups = param_groups(self.model, cfg.solver)
        self.trained_params = [p for g in self.groups for p in g.params]
        self.optimizer = build_optimizer(self.groups, cfg.solver)
        self.scheduler = build_scheduler(self.optimizer, cfg.solver)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.solver.precision == "fp16")
        seed = cfg.seed + 1000 * self.dist.rank
        self.loss_generator = torch.Generator(device=self.device).manual_seed(seed)
        self.noise_generator = torch.Generator().manual_seed(seed + 1)
        seed_globals(seed)
        self.iteration = 0
        if resume_from is not None:
            self._load(resume_from)
        self.resumed_from = resume_from

        # -- DDP around the trained parts only
        self.parts: dict[str, nn.Module | None] = {
            p: getattr(self.model, p) for p in ("segmenter", "tracker", "refiner")
        }
        if self.dist.distributed:
            for part in self.spec.trained:
                module = getattr(self.model, part)
                self.parts[part] = DistributedDataParallel(
                    module,
                    device_ids=[self.device] if self.device.type == "cuda" else None,
                    find_unused_parameters=self.spec.find_unused_parameters,
                )

    # ------------------------------------------------------------------ state

    @property
    def generators(self) -> dict[str, torch.Generator]:
        return {"loss": self.loss_generator, "noise": self.noise_generator}

    def _trained_state(self) -> dict[str, torch.Tensor]:
        state = self.model.state_dict()
        return {k: v for k, v in state.items() if not k.startswith(self._checkpoint_skip)}

    def checkpoint_payload(self) -> dict[str, Any]:
        """The training state (collective: every rank must call it; rank 0 uses the result)."""
        rng = D.all_gather_objects(capture_rng(self.generators))
        init = None
        if self.init_path is not None:
            init = {"path": str(self.init_path), "size": self.init_path.stat().st_size}
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "iteration": self.iteration,
            "model": {k: v.detach().cpu() for k, v in self._trained_state().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "data": {
                "world_size": self.dist.world_size,
                "per_rank_batch": self.per_rank_batch,
                "clips_consumed_per_rank": self.iteration * self.per_rank_batch,
            },
            "init": init,
            "config": to_dict(self.cfg),
        }

    def save(self) -> Path | None:
        """Write a checkpoint of the current iteration (collective); returns its path on rank 0."""
        payload = self.checkpoint_payload()
        path = None
        if self.dist.is_main:
            path = save_checkpoint(
                self.run_dir, self.iteration, payload, keep=self.cfg.output.keep_checkpoints
            )
        D.barrier()
        return path

    def _load(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        expected = set(self._trained_state())
        got = set(ckpt["model"])
        if got != expected:
            missing, extra = sorted(expected - got), sorted(got - expected)
            raise InputError(
                f"checkpoint does not match this stage's model: missing {missing[:5]}, unexpected {extra[:5]}",
                path=path,
            )
        self.model.load_state_dict(ckpt["model"], strict=False)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        # The schedule is a function of the config: a resumed run may extend max_iter / steps.
        factor = lr_factor(self.cfg.solver)
        self.scheduler.lr_lambdas = [factor] * len(self.optimizer.param_groups)
        self.iteration = int(ckpt["iteration"])
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor(self.iteration)
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        states = ckpt["rng"]
        if len(states) == self.dist.world_size:
            restore_rng(states[self.dist.rank], self.generators)
        else:  # a different number of processes: the data stream and RNGs cannot be continued exactly
            seed_globals(self.cfg.seed + 1000 * self.dist.rank + self.iteration)
        notes = []
        if len(states) != self.dist.world_size:
            notes.append(f"saved with {len(states)} processes: not exact")
        saved_init = ckpt.get("init")
        current_init = None
        if self.init_path is not None:
            current_init = {"path": str(self.init_path), "size": self.init_path.stat().st_size}
        if saved_init is not None and saved_init != current_init:
            notes.append(f"warning: the init file changed since the checkpoint ({saved_init['path']})")
        self._resume_note = f"resumed from {path} at iteration {self.iteration}" + "".join(
            f"; {n}" for n in notes
        )

    # ------------------------------------------------------------------ one step

    def _set_modes(self) -> None:
        self.model.train()
        for part in self.spec.frozen:
            getattr(self.model, part).eval()

    def train_step(self, batch: Batch) -> StepResult:
        """Forward, backward, clip and optimizer step for the current iteration (gradients are
        cleared at the start, so they can be inspected afterwards)."""
        self._set_modes()
        self.optimizer.zero_grad(set_to_none=True)
        ctx = StepContext(
            model=self.model,
            segmenter=_required(self.parts["segmenter"]),
            tracker=self.parts["tracker"],
            refiner=self.parts["refiner"],
            criterion=self.criterion,
            iteration=self.iteration,
            max_iter=self.cfg.solver.max_iter,
            frozen_stage_matching=self.cfg.loss.frozen_stage_matching,
            match_on_first_visible_frame=self.cfg.loss.match_on_first_visible_frame,
            loss_generator=self.loss_generator,
            noise_generator=self.noise_generator,
        )
        autocast = (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            try:
                loss = self.spec.step(ctx, batch)
            except FloatingPointError as exc:  # e.g. the matcher's NonFiniteCostError
                raise FloatingPointError(f"{exc} at iteration {self.iteration}") from None
        if not bool(torch.isfinite(loss.total)):
            terms = {k: float(v) for k, v in loss.terms.items()}
            raise FloatingPointError(f"loss is {float(loss.total)} at iteration {self.iteration}: {terms}")
        self.scaler.scale(loss.total).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = clip_gradients(self.trained_params, self.cfg.solver.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.iteration += 1
        return StepResult(loss=loss, grad_norm=grad_norm)

    def batches(self) -> Any:
        """This rank's endless batches from the current iteration on."""
        return clip_batches(
            self.dataset,
            per_rank_batch=self.per_rank_batch,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            seed=self.cfg.seed,
            start_iteration=self.iteration,
            num_workers=self.cfg.data.num_workers,
            pin_memory=self.device.type == "cuda",
        )

    def prepare(self, clips: list[Any]) -> Batch:
        return prepare_batch(
            clips,
            pixel_mean=self.cfg.model.pixel_mean,
            size_divisibility=self.cfg.model.size_divisibility,
            device=self.device,
            max_instances=self.cfg.model.decoder.num_queries if self.cfg.data.truncate_instances else None,
        )

    # ------------------------------------------------------------------ the loop

    def run(self) -> TrainResult:
        cfg = self.cfg
        out = cfg.output
        max_iter = cfg.solver.max_iter
        main = self.dist.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_partial_files(self.run_dir)
            save_yaml(cfg, self.run_dir / "config.yaml")
        D.barrier()
        log = MetricsLogger(
            self.run_dir,
            enabled=main,
            start_iteration=self.iteration,
            max_iter=max_iter,
            tensorboard=out.tensorboard,
            progress=out.progress,
        )
        for line in self._summary():
            log.info(line)
        record: dict[str, Any] = {}
        batches = self.batches()
        window_time = window_data = 0.0
        window_iters = 0
        try:
            while self.iteration < max_iter:
                start = time.perf_counter()
                batch = self.prepare(next(batches))
                fetched = time.perf_counter()
                lr = self.optimizer.param_groups[-1]["lr"]  # the head group (factor 1)
                step = self.train_step(batch)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                window_time += time.perf_counter() - start
                window_data += fetched - start
                window_iters += 1
                log.advance()
                it = self.iteration
                if it % out.log_period == 0 or it == max_iter:
                    values = {"loss": step.loss.total, **step.loss.terms, "grad_norm": step.grad_norm}
                    record = {"iteration": it, "lr": lr, **D.all_reduce_mean(values, self.device)}
                    record["time"] = window_time / window_iters
                    record["data_time"] = window_data / window_iters
                    if self.device.type == "cuda":
                        record["max_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
                    log.record(record)
                    window_time = window_data = 0.0
                    window_iters = 0
                if self.save_checkpoints and (it % out.checkpoint_period == 0 or it == max_iter):
                    path = self.save()
                    if path is not None:
                        log.info(f"checkpoint: {path}")
                if (
                    self.evaluate is not None
                    and cfg.eval.period
                    and (it % cfg.eval.period == 0 or it == max_iter)
                ):
                    self._evaluate(log)
            final = self.run_dir / FINAL_MODEL_NAME
            if main:
                save_native(final, self.model.state_dict(), self._export_config())
                log.info(f"exported the model: {final}")
            D.barrier()
        finally:
            log.close()
        return TrainResult(self.run_dir, self.run_dir / FINAL_MODEL_NAME, self.iteration, record)

    def _evaluate(self, log: MetricsLogger) -> None:
        if self.dist.is_main and self.evaluate is not None:
            self.model.eval()
            with torch.no_grad():
                metrics = self.evaluate(self.model, self.iteration)
            log.record({"iteration": self.iteration, **{f"eval/{k}": float(v) for k, v in metrics.items()}})
            log.info(f"evaluation at iteration {self.iteration}: {metrics}")
            if "VPQ_1246" in metrics:  # the seed paper's / leaderboard's "VPQ"
                log.info(
                    f"  leaderboard VPQ (mean of VPQ1/2/4/6, the paper's VPQ) {metrics['VPQ_1246']:.2f}; "
                    f"official 5-window VPQ {metrics.get('VPQ', float('nan')):.2f}"
                )
        D.barrier()

    def _export_config(self) -> Any:
        config = self.cfg.model_config()
        if config.inference.mode == "offline" and "refiner" not in self.spec.built:
            config = dataclasses.replace(
                config, inference=dataclasses.replace(config.inference, mode="online")
            )
        return config

    def _summary(self) -> list[str]:
        cfg, spec = self.cfg, self.spec
        n_trained = sum(p.numel() for p in self.trained_params)
        n_total = sum(p.numel() for p in self.model.parameters())
        lines = [
            f"stage {cfg.stage.name or '(single)'} [{spec.kind}]: {spec.summary}",
            f"  built {', '.join(spec.built)}; frozen {', '.join(spec.frozen) or '-'}"
            f"{' (+ the ViT)' if cfg.model.vit.frozen else ''}; trained {', '.join(spec.trained)}",
            f"  parameters: {n_trained:,} trained of {n_total:,}",
            *(
                f"  group {g.name}: {sum(p.numel() for p in g.params):,} params, lr {cfg.solver.base_lr * g.lr_factor:.3g}, "
                f"wd {g.weight_decay:g}"
                for g in self.groups
            ),
            f"  data: {_describe(self.dataset.source)}; {cfg.solver.clips_per_batch} clips/iteration "
            f"({self.per_rank_batch} per process x {self.dist.world_size}) of {cfg.data.sampling.num_frames} frames",
            f"  device {self.device}, precision {cfg.solver.precision}, {cfg.solver.max_iter} iterations, output {self.run_dir}",
            *self.init_lines,
        ]
        if self._resume_note:
            lines.append(self._resume_note)
        return lines


def _describe(source: Any) -> str:
    from vidpan.data.loader import describe_source

    return describe_source(source)


def _required(module: nn.Module | None) -> nn.Module:
    if module is None:
        raise ValueError("the segmenter is always built")
    return module


def preflight(cfg: TrainConfig) -> None:
    """The input checks of :class:`Trainer` that need no model: config values, the dataset (every
    file, the split, strict clip lengths), its class space, and an explicit init file. Run for
    every stage before the first one trains, so a bad later stage fails before hours of training."""
    validate_train_config(cfg)
    autocast_dtype(cfg.solver.precision, D.resolve_device(cfg.device, 0))
    source = build_dataset(cfg.data, seed=cfg.seed, rank=0).source
    check_class_space(
        source.mapping, cfg.model.num_classes, cfg.model.num_things, where=f"data ({cfg.data.dataset})"
    )
    init = resolve_init(cfg)
    if init is not None and not cfg.stage.init.startswith(STAGE_REF_PREFIX) and not init.is_file():
        raise InputError("stage.init: checkpoint not found", path=init)
    check_writable_dir(cfg.run_dir)


def train(cfg: TrainConfig, *, resume: bool = False, evaluate: Evaluator | None = None) -> TrainResult:
    """Train one stage in this process (joining the ``torchrun`` process group if there is one)."""
    ctx = D.init_distributed(cfg.device)
    try:
        return Trainer(cfg, resume=resume, evaluate=evaluate, dist_ctx=ctx).run()
    finally:
        D.shutdown(ctx)


__all__ = ["Evaluator", "StepResult", "TrainResult", "Trainer", "preflight", "train"]
