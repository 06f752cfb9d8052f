"""Run a batch on Ray Core actors: the model loaded once per actor, one task per video.

The driver (the ``vidpan segment`` process) connects to a cluster (``--ray-address auto`` or
``HOST:PORT``) or starts a local one, creates ``--workers`` :class:`SegmentWorker` actors (each
reserving one CPU, or ``--gpus-per-worker`` GPUs), and keeps each actor busy with one video at a
time, so fast and slow videos balance themselves. A stateful tracker runs over a whole video, so
a video is never split across workers.

Lost workers: actors are created with ``max_restarts`` / ``max_task_retries``, so when a worker
process dies mid-video Ray restarts it (the model loads again) and re-runs that video's task;
the output folder is assembled under a temporary name, so the dead attempt leaves nothing in
place (its temporary folder is removed by the retry). When the retries are spent the video is
recorded as failed and the actor replaced. Only the driver writes the manifest.

Outputs are written by the workers straight into ``OUT/<video>/``: on a cluster ``OUT`` must be a
path every node sees (a shared file system) and vidpan must be installed on every node.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidpan.batch.inputs import VideoItem
from vidpan.batch.job import _one_line, segment_one, worker_name
from vidpan.batch.manifest import InputIdentity, ManifestRecord
from vidpan.errors import InputError

if TYPE_CHECKING:
    from vidpan.batch.runner import BatchPlan
    from vidpan.inference.segment_job import SegmentOptions

MAX_RETRIES = 3  # restarts of a lost worker, and re-runs of the video it held


def import_ray() -> Any:
    """``ray``, or an InputError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install vidpan[ray]") from None
    return ray


class SegmentWorker:
    """One Ray actor: a model loaded once, then :meth:`segment` per video."""

    def __init__(self, options: SegmentOptions, out_dir: str, hooks: Mapping[str, str]) -> None:
        from vidpan.inference.segment_job import load_segmenter

        self.options = options
        self.out_dir = Path(out_dir)
        self.hooks = dict(hooks)
        self.loaded = load_segmenter(options)

    def ready(self) -> str:
        return worker_name()

    def segment(self, item: VideoItem, identity: InputIdentity, chash: str) -> ManifestRecord:
        return segment_one(
            self.loaded, item, identity, self.out_dir, self.options, chash=chash,
            worker=worker_name(), hooks=self.hooks,
        )  # fmt: skip


def _lost(
    item: VideoItem, identity: InputIdentity, chash: str, exc: BaseException, *, lost: bool = True
) -> ManifestRecord:
    error = f"worker lost after {MAX_RETRIES} retries ({_one_line(exc)})" if lost else _one_line(exc)
    return ManifestRecord(
        video=item.name, input=identity, config_hash=chash, status="failed", started_at=time.time(),
        seconds=0.0, error=error, worker="ray",
    )  # fmt: skip


def run_on_ray(
    plan: BatchPlan,
    out_dir: Path,
    options: SegmentOptions,
    *,
    on_record: Callable[[ManifestRecord], None],
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    hooks: Mapping[str, str] | None = None,
) -> float:
    """Segment ``plan.todo`` on Ray; ``on_record`` is called in the driver for each video.

    Returns the seconds from the moment every worker had its model loaded to the last video.
    """
    ray = import_ray()
    from ray.exceptions import RayActorError, RayError

    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise InputError(f"cannot connect to Ray at {address or 'a new local cluster'}: {exc}") from None
    try:
        resources = ray.cluster_resources()
        if workers is None:
            if gpus_per_worker > 0:
                workers = int(resources.get("GPU", 0) // gpus_per_worker)
            else:
                workers = int(resources.get("CPU", 1))
        workers = max(1, min(workers, len(plan.todo)))
        actor_cls = ray.remote(num_cpus=1, num_gpus=gpus_per_worker or 0, max_restarts=MAX_RETRIES,
                               max_task_retries=MAX_RETRIES)(SegmentWorker)  # fmt: skip
        args = (options, str(out_dir.absolute()), dict(hooks or {}))
        actors = [actor_cls.remote(*args) for _ in range(workers)]
        try:
            ray.get([a.ready.remote() for a in actors])
        except RayError as exc:  # the model does not load: an error of the run, not of a video
            raise InputError(f"Ray workers could not load the model: {_one_line(exc)}") from None

        t0 = time.perf_counter()
        queue = deque(plan.todo)
        pending: dict[Any, tuple[int, VideoItem, InputIdentity]] = {}

        def submit(index: int) -> None:
            if queue:
                item, identity = queue.popleft()
                ref = actors[index].segment.remote(item, identity, plan.config_hash)
                pending[ref] = (index, item, identity)

        for index in range(len(actors)):
            submit(index)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            index, item, identity = pending.pop(ref)
            try:
                record = ray.get(ref)
            except RayActorError as exc:  # retries spent: record it, replace the actor
                record = _lost(item, identity, plan.config_hash, exc)
                ray.kill(actors[index], no_restart=True)
                actors[index] = actor_cls.remote(*args)
            except RayError as exc:  # not an error of the video (segment_one catches those)
                record = _lost(item, identity, plan.config_hash, exc, lost=False)
            on_record(record)
            submit(index)
        seconds = time.perf_counter() - t0
        for actor in actors:
            ray.kill(actor, no_restart=True)
        return seconds
    finally:
        if started_here:
            ray.shutdown()
