"""Segment one video of a batch into ``OUT/<name>/``: the unit of work of every engine.

:func:`segment_one` opens the input, calls
:func:`vidpan.inference.segment_job.segment_to_dir` (which assembles the folder under a
temporary name and renames it at the end) and returns a :class:`ManifestRecord`. Any error of
that video (missing, corrupt, a failure inside the model) is returned as a ``failed`` record, so
the batch goes on; ``KeyboardInterrupt`` / ``SystemExit`` propagate. Before it starts it removes
the temporary folders that an earlier, killed attempt at the same video left behind.

Test hooks (fault injection; read only when set, never in normal use):

- ``VIDPAN_TEST_EXIT_AT_FRAME="<video>:<k>"``: the process exits at once (``os._exit(70)``, no
  clean-up, like a killed worker) when frame ``k`` of ``<video>`` is decoded;
- ``VIDPAN_TEST_HANG_AT_FRAME="<video>:<k>"``: the process sleeps there instead (a test then
  sends SIGKILL at a known point);
- ``VIDPAN_TEST_HOOK_ONCE=<file>``: the hook fires only if it can create ``<file>`` (so a retry
  of the same video proceeds).

Engines read them with :func:`test_hooks` in the process that drives the batch and pass them on
explicitly (Ray actors may not share the driver's environment).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidpan.batch.inputs import VideoItem
from vidpan.batch.manifest import InputIdentity, ManifestRecord

if TYPE_CHECKING:
    import numpy as np

    from vidpan.inference.segment_job import LoadedSegmenter, SegmentOptions
    from vidpan.inference.video_io import VideoSource

HOOK_VARS = ("VIDPAN_TEST_EXIT_AT_FRAME", "VIDPAN_TEST_HANG_AT_FRAME", "VIDPAN_TEST_HOOK_ONCE")


def test_hooks(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The fault-injection variables that are set (usually none)."""
    env = os.environ if environ is None else environ
    return {k: env[k] for k in HOOK_VARS if env.get(k)}


def worker_name(rank: int | None = None) -> str:
    suffix = f":rank{rank}" if rank is not None else ""
    return f"{socket.gethostname()}:{os.getpid()}{suffix}"


def _hook_at(hooks: Mapping[str, str], name: str) -> tuple[str, int] | None:
    for var, action in (("VIDPAN_TEST_EXIT_AT_FRAME", "exit"), ("VIDPAN_TEST_HANG_AT_FRAME", "hang")):
        spec = hooks.get(var)
        if spec:
            video, _, frame = spec.rpartition(":")
            if video == name:
                return action, int(frame)
    return None


def _fire(action: str, hooks: Mapping[str, str]) -> None:
    once = hooks.get("VIDPAN_TEST_HOOK_ONCE")
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    if action == "exit":
        os._exit(70)
    while True:
        time.sleep(3600)


def _hooked(source: VideoSource, action: str, frame: int, hooks: Mapping[str, str]) -> VideoSource:
    """``source`` whose frame iterator fires the hook when frame ``frame`` is reached."""
    from vidpan.inference.video_io import VideoSource

    class HookedSource(VideoSource):
        def __init__(self) -> None:
            self.__dict__.update(vars(source))

        def __iter__(self) -> Iterator[np.ndarray]:
            for index, image in enumerate(source):
                if index == frame:
                    _fire(action, hooks)
                yield image

    return HookedSource()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")


def segment_one(
    loaded: LoadedSegmenter,
    item: VideoItem,
    identity: InputIdentity,
    out_dir: Path,
    options: SegmentOptions,
    *,
    chash: str,
    worker: str,
    hooks: Mapping[str, str] | None = None,
) -> ManifestRecord:
    """Segment ``item`` into ``out_dir / item.name``; a failure becomes a ``failed`` record."""
    from vidpan.inference.segment_job import max_pixels_override, open_inputs, segment_to_dir

    started = time.time()
    t0 = time.perf_counter()
    fields: dict[str, Any] = {}
    try:
        (source,) = open_inputs([item.path], max_pixels=max_pixels_override(options.overrides))
        hook = _hook_at(hooks or {}, item.name)
        if hook is not None:
            source = _hooked(source, hook[0], hook[1], hooks or {})
        report = segment_to_dir(loaded, [source], out_dir / item.name, options)
        (video,) = report.videos
        fields = dict(frames=video.num_frames, segments=video.num_segments, segment_seconds=video.seconds)
        if report.incomplete:  # a truncated input: outputs cover the decoded frames
            fields["warning"] = "; ".join(report.incomplete.values())
        status, error = "done", None
    except Exception as exc:
        status, error = "failed", _one_line(exc)
    return ManifestRecord(
        video=item.name,
        input=identity,
        config_hash=chash,
        status=status,  # type: ignore[arg-type]
        started_at=started,
        seconds=round(time.perf_counter() - t0, 4),
        error=error,
        worker=worker,
        **fields,
    )
