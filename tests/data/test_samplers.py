"""Clip frame selection: contiguous windows, ±range sampling, reverse, short videos, strict mode."""

from __future__ import annotations

import numpy as np
import pytest

from vidpan.data.samplers import FrameSampling, check_clip_lengths, select_frames
from vidpan.errors import InputError


def _draws(length: int, sampling: FrameSampling, n: int = 300, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [select_frames(length, sampling, rng) for _ in range(n)]


def test_contiguous_windows_cover_every_start() -> None:
    s = FrameSampling(num_frames=5, frame_range=2)
    assert s.contiguous
    starts = set()
    for clip in _draws(12, s):
        assert clip == list(range(clip[0], clip[0] + 5))
        starts.add(clip[0])
    assert starts == set(range(0, 12 - 5 + 1))  # including the last window (reference skips it)
    assert _draws(5, s, n=3) == [[0, 1, 2, 3, 4]] * 3


def test_range_mode_sorted_within_range() -> None:
    s = FrameSampling(num_frames=4, frame_range=3)
    assert not s.contiguous
    saw_duplicate = False
    for clip in _draws(30, s, n=500):
        assert len(clip) == 4 and clip == sorted(clip)
        assert all(0 <= i < 30 for i in clip)
        # some frame of the clip (the reference) has every other frame within ±3 of it
        assert any(all(abs(i - r) <= 3 for i in clip) for r in clip)
        saw_duplicate |= len(set(clip)) < 4
    assert saw_duplicate  # with replacement, as DVIS++'s VPS mapper


def test_range_mode_without_replacement() -> None:
    s = FrameSampling(num_frames=4, frame_range=3, replace=False)
    for clip in _draws(30, s, n=300):
        assert len(set(clip)) == 4
    # a window smaller than the clip falls back to drawing with replacement
    assert all(len(c) == 4 for c in _draws(2, s, n=20))


def test_reverse_about_half_the_time() -> None:
    for s in (FrameSampling(5, 2, reverse=True), FrameSampling(3, 4, reverse=True)):
        clips = _draws(40, s, n=400)
        backwards = sum(c[0] > c[-1] for c in clips)
        forwards = sum(c[0] < c[-1] for c in clips)
        assert 140 < backwards < 260 and backwards + forwards + sum(c[0] == c[-1] for c in clips) == 400
        assert all(c == sorted(c) or c == sorted(c, reverse=True) for c in clips)
    assert all(c == sorted(c) for c in _draws(40, FrameSampling(5, 2), n=100))


def test_short_video_repeats_frames() -> None:
    s = FrameSampling(num_frames=7, frame_range=3)
    for clip in _draws(4, s, n=100):
        assert len(clip) == 7 and set(clip) == {0, 1, 2, 3} and clip == sorted(clip)
    quirk = FrameSampling(num_frames=7, frame_range=3, sort_padding=False)
    for clip in _draws(4, quirk, n=100):
        assert clip[:4] == [0, 1, 2, 3] and len(clip) == 7  # the reference's order: extras appended
    assert _draws(1, FrameSampling(3, 5), n=2) == [[0, 0, 0]] * 2  # one-frame video, range mode
    assert all(c == [c[0]] for c in _draws(9, FrameSampling(1, 0), n=20))


def test_deterministic_given_the_generator() -> None:
    for s in (FrameSampling(5, 2, reverse=True), FrameSampling(4, 6), FrameSampling(9, 4)):
        assert _draws(20, s, seed=7) == _draws(20, s, seed=7)
        assert _draws(20, s, seed=7) != _draws(20, s, seed=8)


def test_strict_mode() -> None:
    s = FrameSampling(num_frames=21, frame_range=10, strict=True)
    with pytest.raises(InputError, match="only 12 frames"):
        select_frames(12, s, np.random.default_rng(0))
    with pytest.raises(InputError, match=r"2 of 3 videos are shorter: a \(12 frames\), c \(3 frames\)"):
        check_clip_lengths([12, 30, 3], s, video_ids=["a", "b", "c"])
    check_clip_lengths([12, 30, 3], FrameSampling(21, 10))  # non-strict: fine
    with pytest.raises(InputError):
        FrameSampling(num_frames=0, frame_range=1)
