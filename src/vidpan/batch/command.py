"""``vidpan segment --video-list ...``: the command-line side of a batch (checks, table, exit code).

Exit codes: 0 when every video of the list is finished (now or by an earlier run), 1 when some
failed (see ``OUT/failures.jsonl``; re-run the same command to retry them), 2 for bad arguments,
a bad model or a list that names nothing, 3 when all finished but an input segmented in this run
was truncated (as ``vidpan segment``; ``--allow-partial``: 0). ``--overwrite`` redoes finished
videos too. Under torchrun only rank 0 prints the table of the
whole job; every rank's exit code says whether its own shard succeeded (rank 0's: the job's).
"""

from __future__ import annotations

import argparse
import sys

from vidpan.errors import InputError


def run_batch_command(args: argparse.Namespace) -> int:
    from vidpan.batch.inputs import resolve_video_list
    from vidpan.batch.runner import Distributed, run_batch
    from vidpan.cli.segment import segment_options

    if args.video_list is None:
        raise InputError("--engine ray runs a batch: give --video-list FILE|DIR|GLOB")
    if args.inputs:
        raise InputError("give either INPUT video(s) or --video-list, not both")
    if (args.task is not None and "," in args.task) or args.weights_vss is not None:
        raise InputError("--video-list runs one task per batch (no --task a,b / --weights-vss)")
    if args.vss_from != "soft":
        raise InputError("--video-list does not support --vss-from panoptic")
    if args.engine != "ray" and (args.ray_address or args.workers is not None or args.gpus_per_worker):
        raise InputError("--ray-address, --workers and --gpus-per-worker need --engine ray")
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}")
    if args.gpus_per_worker < 0:
        raise InputError(f"--gpus-per-worker must be >= 0, got {args.gpus_per_worker}")
    if args.gpus_per_worker > 0 and not args.device.startswith("cuda"):
        raise InputError("--gpus-per-worker > 0 needs --device cuda")
    items = resolve_video_list(args.video_list)
    options = segment_options(
        args,
        progress=False,  # the batch has its own bar, over videos
        # The batch replaces its own stale output of a video it redoes (OUT/<video>/).
        overwrite=True,
        engine="torch" if args.engine == "ray" else args.engine,
    )
    if args.engine == "ray":
        from vidpan.batch.ray_engine import import_ray

        import_ray()  # fail now, with the install hint
    report = run_batch(
        items, args.out, options, engine=args.engine, sha256=args.hash_inputs, redo=args.overwrite,
        ray_address=args.ray_address,
        workers=args.workers, gpus_per_worker=args.gpus_per_worker,
        progress=not args.no_progress and sys.stderr.isatty(),
    )  # fmt: skip
    dist = Distributed.from_env() if args.engine != "ray" else None
    if dist is None or dist.rank == 0:
        print(report.table())
    if not report.ok:
        return 1
    incomplete = [r for r in report.done if r.warning]
    for r in incomplete:
        print(
            f"vidpan segment: warning: {r.warning}; its outputs cover the decoded frames only",
            file=sys.stderr,
        )
    return 3 if incomplete and not args.allow_partial else 0
