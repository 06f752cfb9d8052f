"""Plan and run a batch: skip finished videos, segment the rest, record every attempt.

:func:`run_batch` is the library function behind ``vidpan segment --video-list``. It

1. computes the config hash and each video's input identity, reads the manifest (all files) and
   keeps the videos that are not finished (:func:`plan_batch`);
2. runs them on an engine: here, one after the other in this process (``torch``), or in this
   torchrun rank's shard (``RANK`` / ``WORLD_SIZE`` set by torchrun: rank ``r`` takes
   ``videos[r::world_size]`` of the sorted list, appends to ``manifest.rank{r}.jsonl``, and rank 0
   merges the rank files into ``manifest.jsonl`` after a gloo barrier); or on Ray actors
   (:mod:`vidpan.batch.ray_engine`, the driver appends to ``manifest.jsonl``);
3. rewrites ``failures.jsonl`` and returns a :class:`BatchReport`.

A video's failure never stops the batch; a bad model or option (``InputError`` before any video
runs) does.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from vidpan.batch.inputs import VideoItem, shard
from vidpan.batch.job import _one_line, segment_one, test_hooks, worker_name
from vidpan.batch.manifest import (
    MANIFEST,
    InputIdentity,
    ManifestRecord,
    ManifestWriter,
    config_hash,
    consolidate,
    input_identity,
    is_finished,
    latest,
    manifest_files,
    read_records,
    write_failures,
)
from vidpan.batch.report import BatchReport
from vidpan.utils.atomic import check_writable_dir

if TYPE_CHECKING:
    from vidpan.inference.segment_job import LoadedSegmenter, SegmentOptions


@dataclass
class BatchPlan:
    """The work of one run: videos to segment (with their identities) and videos to skip."""

    config_hash: str
    todo: list[tuple[VideoItem, InputIdentity]] = field(default_factory=list)
    skipped: list[ManifestRecord] = field(default_factory=list)
    unreadable: list[ManifestRecord] = field(default_factory=list)  # inputs we cannot even stat


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (``rank`` of ``world_size``)."""

    rank: int
    world_size: int
    local_rank: int

    @staticmethod
    def from_env() -> Distributed | None:
        """Set when torchrun started us with more than one process."""
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world <= 1 or "RANK" not in os.environ:
            return None
        rank = int(os.environ["RANK"])
        return Distributed(rank, world, int(os.environ.get("LOCAL_RANK", rank)))


def plan_batch(
    items: list[VideoItem],
    out_dir: Path,
    options: SegmentOptions,
    *,
    sha256: bool = False,
    redo: bool = False,
) -> BatchPlan:
    """Which of ``items`` need work, given the manifest files already in ``out_dir``
    (``redo``: all of them)."""
    chash = config_hash(options)
    last = latest(read_records(manifest_files(out_dir))) if out_dir.is_dir() else {}
    plan = BatchPlan(config_hash=chash)
    for item in items:
        try:
            identity = input_identity(item.path, sha256=sha256)
        except OSError as exc:
            plan.unreadable.append(
                ManifestRecord(
                    video=item.name,
                    input=InputIdentity(str(item.path), -1, -1),
                    config_hash=chash,
                    status="failed",
                    started_at=time.time(),
                    seconds=0.0,
                    error="no such video file or frame folder" if not item.path.exists() else _one_line(exc),
                    worker=worker_name(),
                )
            )
            continue
        record = last.get(item.name)
        if not redo and record is not None and is_finished(record, identity, chash, out_dir):
            plan.skipped.append(record)
        else:
            plan.todo.append((item, identity))
    return plan


def _progress(total: int, enabled: bool, desc: str) -> Callable[[], None]:
    if not enabled or not total:
        return lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="video", desc=desc, dynamic_ncols=True)

    def step() -> None:
        bar.update(1)
        if bar.n >= total:
            bar.close()

    return step


def _run_local(
    loaded: LoadedSegmenter,
    plan: BatchPlan,
    out_dir: Path,
    options: SegmentOptions,
    writer: ManifestWriter,
    *,
    rank: int | None,
    step: Callable[[], None],
) -> list[ManifestRecord]:
    hooks = test_hooks()
    records = []
    for item, identity in plan.todo:
        record = segment_one(
            loaded, item, identity, out_dir, options, chash=plan.config_hash,
            worker=worker_name(rank), hooks=hooks,
        )  # fmt: skip
        writer.append(record)
        records.append(record)
        step()
    return records


def run_batch(
    items: list[VideoItem],
    out_dir: Path,
    options: SegmentOptions,
    *,
    engine: str = "torch",
    sha256: bool = False,
    redo: bool = False,
    ray_address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    progress: bool = False,
) -> BatchReport:
    """Segment ``items`` into ``out_dir/<name>/`` (see the module docstring)."""
    check_writable_dir(out_dir)
    options = dataclasses.replace(options, progress=False)  # one bar over videos, not frames
    dist = Distributed.from_env() if engine != "ray" else None
    names = {item.name for item in items}  # the whole batch, before sharding
    if dist is not None:
        if options.device.startswith("cuda") and ":" not in options.device:
            options = dataclasses.replace(options, device=f"cuda:{dist.local_rank}")
        items = shard(items, dist.rank, dist.world_size)
        _init_gloo()
    t0 = time.perf_counter()
    plan = plan_batch(items, out_dir, options, sha256=sha256, redo=redo)
    loaded = None
    if engine != "ray" and plan.todo:
        from vidpan.inference.segment_job import load_segmenter

        loaded = load_segmenter(options)  # bad weights: InputError before anything is written
    name = MANIFEST if dist is None else f"manifest.rank{dist.rank}.jsonl"
    report = BatchReport(out_dir=out_dir, skipped=plan.skipped)
    step = _progress(len(plan.todo), progress and (dist is None or dist.rank == 0), "videos")
    with ManifestWriter(out_dir / name) as writer:
        for record in plan.unreadable:
            writer.append(record)
        report.records.extend(plan.unreadable)
        if engine == "ray" and plan.todo:
            from vidpan.batch.ray_engine import run_on_ray

            def on_record(record: ManifestRecord) -> None:
                writer.append(record)
                report.records.append(record)
                step()

            report.work_seconds = run_on_ray(
                plan, out_dir, options, on_record=on_record, address=ray_address, workers=workers,
                gpus_per_worker=gpus_per_worker, hooks=test_hooks(),
            )  # fmt: skip
        elif loaded is not None:
            rank = None if dist is None else dist.rank
            report.records.extend(_run_local(loaded, plan, out_dir, options, writer, rank=rank, step=step))
    report.seconds = time.perf_counter() - t0
    if dist is None:
        records = read_records(manifest_files(out_dir))
        write_failures(out_dir, [r for r in records if r.video in names])
    else:
        _finish_distributed(report, dist, out_dir, names)
    return report


def _init_gloo() -> None:
    import torch.distributed as tdist

    if not tdist.is_initialized():
        # Long timeout: ranks wait at the final barrier for the slowest shard.
        tdist.init_process_group("gloo", timeout=timedelta(days=7))


def _finish_distributed(report: BatchReport, dist: Distributed, out_dir: Path, names: set[str]) -> None:
    """Barrier; rank 0 merges the rank manifests and reports on the whole job."""
    import torch.distributed as tdist

    mine = ([r.to_json() for r in report.records], [r.to_json() for r in report.skipped], report.seconds)
    gathered: list[tuple[list[str], list[str], float] | None] = [None] * dist.world_size
    tdist.all_gather_object(gathered, mine)  # also the barrier: every rank has finished writing
    if dist.rank == 0:
        parts = [g for g in gathered if g is not None]
        report.records = [ManifestRecord.from_json(line) for g in parts for line in g[0]]
        report.skipped = [ManifestRecord.from_json(line) for g in parts for line in g[1]]
        report.seconds = max(g[2] for g in parts)
        records = consolidate(out_dir)
        write_failures(out_dir, [r for r in records if r.video in names])
    tdist.barrier()
    tdist.destroy_process_group()
