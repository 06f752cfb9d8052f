"""Which frames of a video make a training clip (DVIS++ ``select_frames``), as pure functions.

Follows ``dataset_mapper_vps.py`` / ``dataset_mapper_vss.py`` (reference §4.2):

- ``2 * frame_range + 1 == num_frames`` -> a contiguous window at a uniformly random start;
- otherwise a random reference frame plus ``num_frames - 1`` frames drawn with replacement from the
  other frames within ``±frame_range`` of it, returned sorted (``replace=False`` draws without
  replacement when the window is large enough, as DVIS++'s VIS mapper);
- reverse augmentation: with probability 0.5 the clip is played backwards.

Deliberate differences from the reference, all of which only change which random clips appear:

- the reference draws the contiguous start with ``randrange(L - num)``, so the last window of a
  video is never chosen; here every start ``0 .. L - num`` is equally likely;
- the reference reverses only contiguous clips (its R50 offline recipe, 11 frames in ±10, sets
  ``REVERSE_AGU`` to no effect); here ``reverse`` applies in both modes;
- a video shorter than a contiguous clip gets randomly chosen repeated frames; the reference
  appends them after the whole video (its ``sorted(...)`` result is discarded), here they are
  sorted into place so time never runs backwards inside a clip (``sort_padding=False`` restores
  the reference order);
- a one-frame video in range mode (the reference crashes on an empty choice) repeats its frame.

``strict=True`` refuses videos shorter than the clip instead of repeating frames;
:func:`check_clip_lengths` reports them all before training starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidpan.errors import InputError


@dataclass(frozen=True)
class FrameSampling:
    """How to pick a clip's frames.

    Attributes:
        num_frames: frames per clip (``SAMPLING_FRAME_NUM``).
        frame_range: max distance of the other frames from the reference frame
            (``SAMPLING_FRAME_RANGE``); ``2 * frame_range + 1 == num_frames`` means contiguous.
        reverse: play the clip backwards with probability 0.5 (``REVERSE_AGU``).
        replace: range mode draws with replacement (DVIS++ VPS/VSS mappers) or, when the window
            holds enough frames, without.
        strict: a video shorter than ``num_frames`` is an error instead of repeating frames.
        sort_padding: repeated frames of short videos sorted into place (False: appended at the
            end, the reference's order).
    """

    num_frames: int
    frame_range: int
    reverse: bool = False
    replace: bool = True
    strict: bool = False
    sort_padding: bool = True

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise InputError(f"frame sampling: num_frames must be >= 1, got {self.num_frames}")
        if self.frame_range < 0:
            raise InputError(f"frame sampling: frame_range must be >= 0, got {self.frame_range}")

    @property
    def contiguous(self) -> bool:
        return 2 * self.frame_range + 1 == self.num_frames


def _too_short(video_length: int, sampling: FrameSampling) -> InputError:
    return InputError(
        f"a clip of {sampling.num_frames} frames was requested (strict) but the video has only "
        f"{video_length} frames"
    )


def select_frames(video_length: int, sampling: FrameSampling, rng: np.random.Generator) -> list[int]:
    """Frame indices of one training clip of a video of ``video_length`` frames.

    Deterministic given ``rng``'s state; every index lies in ``[0, video_length)``.
    """
    if video_length < 1:
        raise ValueError("video_length must be >= 1")
    num = sampling.num_frames
    if sampling.strict and video_length < num:
        raise _too_short(video_length, sampling)
    if sampling.contiguous:
        if video_length >= num:
            start = int(rng.integers(0, video_length - num + 1))
            selected = list(range(start, start + num))
        else:
            extra = rng.choice(video_length, size=num - video_length, replace=True).tolist()
            selected = list(range(video_length)) + [int(e) for e in extra]
            if sampling.sort_padding:
                selected.sort()
    else:
        ref = int(rng.integers(0, video_length))
        lo, hi = max(0, ref - sampling.frame_range), min(video_length, ref + sampling.frame_range + 1)
        others = np.array([*range(lo, ref), *range(ref + 1, hi)], dtype=np.int64)
        if num == 1:
            picked: list[int] = []
        elif len(others) == 0:
            picked = [ref] * (num - 1)
        else:
            replace = sampling.replace or len(others) < num - 1
            picked = [int(i) for i in rng.choice(others, size=num - 1, replace=replace)]
        selected = sorted([*picked, ref])
    if sampling.reverse and rng.random() < 0.5:
        selected.reverse()
    return selected


def check_clip_lengths(
    lengths: Sequence[int],
    sampling: FrameSampling,
    *,
    video_ids: Sequence[str] | None = None,
    source: str | Path | None = None,
    show: int = 5,
) -> None:
    """In strict mode, raise one :class:`InputError` naming the videos shorter than the clip."""
    if not sampling.strict:
        return
    names = list(video_ids) if video_ids is not None else [f"#{i}" for i in range(len(lengths))]
    short = [(n, k) for n, k in zip(names, lengths, strict=True) if k < sampling.num_frames]
    if short:
        listed = ", ".join(f"{n} ({k} frames)" for n, k in short[:show])
        more = f" and {len(short) - show} more" if len(short) > show else ""
        raise InputError(
            f"clips of {sampling.num_frames} frames requested with strict sampling, but {len(short)} of "
            f"{len(lengths)} videos are shorter: {listed}{more} (lower num_frames or disable strict)",
            path=source,
        )
