"""Pixel-pair counting: the run-length path equals a plain ``np.unique`` on every kind of map."""

from __future__ import annotations

import numpy as np
import pytest

from vidpan.evaluation.pairs import count_pairs


def _plain(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pairs = np.stack([gt.ravel().astype(np.int64), pred.ravel().astype(np.int64)], 1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    return uniq[:, 0], uniq[:, 1], counts


@pytest.mark.parametrize("kind", ["blocks", "noise", "constant", "empty", "one_pixel"])
def test_count_pairs_equals_unique(kind: str) -> None:
    rng = np.random.default_rng(0)
    if kind == "blocks":
        gt = (rng.integers(0, 30, (9, 12)) * 65536 + 5).repeat(8, 0).repeat(8, 1)
        pred = (rng.integers(0, 30, (9, 12)) * 257).repeat(8, 0).repeat(8, 1)
    elif kind == "noise":
        gt = rng.integers(0, 1 << 24, (40, 50))
        pred = rng.integers(0, 3, (40, 50))
    elif kind == "constant":
        gt = np.full((20, 30), 7)
        pred = np.zeros((20, 30), int)
    elif kind == "empty":
        gt = np.zeros((0, 4), int)
        pred = np.zeros((0, 4), int)
    else:
        gt = np.array([[(1 << 24) - 1]])
        pred = np.array([[3]])
    got = count_pairs(gt.astype(np.uint32), pred.astype(np.uint32))
    for a, b in zip(got, _plain(gt, pred), strict=True):
        assert a.dtype == np.int64
        np.testing.assert_array_equal(a, b)
