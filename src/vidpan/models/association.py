"""Frame-to-frame query association for the referring tracker: Hungarian matching and the
denoising-training identity noise.

Follows DVIS++ ``dvis_Plus/noiser.py`` (``Noiser.match_embds`` and the ``rs`` / ``wa`` / ``cc``
noise modes), with two deliberate differences, both invisible for a batch of one video:

* matching is done **per batch element** (DVIS++ matches batch element 0 only and applies that
  permutation to the whole batch, which is wrong for more than one video per device);
* the noise decision and draws are made per batch element from an explicit
  :class:`torch.Generator` (DVIS++ draws from Python's, NumPy's and torch's global RNGs and
  shares one draw across the batch).

Index convention (DVIS++'s, which aligns correctly; original DVIS returns the inverse): for
previous-frame track slots ``r`` and current-frame queries ``q``, ``perm[r]`` is the current
query placed in slot ``r``, so ``current[perm]`` is aligned to the previous frame.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

NoiseMode = Literal["none", "wa", "rs", "cc"]
NOISE_MODES: tuple[str, ...] = ("none", "wa", "rs", "cc")


def match_embeddings(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Hungarian assignment of current-frame queries to previous-frame track slots.

    Cost = 1 − cosine similarity (embeddings divided by ``norm + 1e-6``, as DVIS++), NaN → 0,
    solved exactly with ``scipy.optimize.linear_sum_assignment`` on CPU in float32.

    Args:
        previous: [B, Q, C] the previous frame's segmenter embeddings, already aligned to slots.
        current: [B, Q, C] the current frame's segmenter embeddings (segmenter query order).

    Returns:
        [B, Q] int64 on ``current.device``: ``perm[b, r]`` = current query placed in slot ``r``.
    """
    if previous.shape != current.shape or previous.dim() != 3:
        raise ValueError(
            f"expected two [B, Q, C] tensors, got {tuple(previous.shape)} and {tuple(current.shape)}"
        )
    prev = previous.detach().float()
    cur = current.detach().float()
    prev = prev / (prev.norm(dim=-1, keepdim=True) + 1e-6)
    cur = cur / (cur.norm(dim=-1, keepdim=True) + 1e-6)
    # Same product order as the reference (current x previous, then transposed) so that ties
    # resolve identically.
    with torch.autocast(current.device.type, enabled=False):  # float32 even under AMP
        cost = 1.0 - torch.bmm(cur, prev.transpose(1, 2))  # [B, Q_cur, Q_prev]
    cost = torch.where(cost.isnan(), torch.zeros_like(cost), cost)
    cost_np = cost.transpose(1, 2).cpu().numpy()  # [B, Q_prev (slot), Q_cur]
    from scipy.optimize import linear_sum_assignment  # lazy: scipy.optimize costs ~40 MB and 0.4 s

    perms = [linear_sum_assignment(c)[1] for c in cost_np]
    return torch.from_numpy(np.stack(perms).astype(np.int64)).to(current.device)


def _gather_queries(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x: [Q, C], index: [Q] -> x[index]."""
    return x.index_select(0, index.to(x.device))


def apply_identity_noise(
    matched: torch.Tensor,
    identity: torch.Tensor,
    *,
    mode: NoiseMode,
    ratio: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DVIS++ denoising training: replace the matched identity by a noised one with prob. ``ratio``.

    For each batch element independently, with probability ``ratio`` (and ``mode != "none"``):

    * ``rs``: the identities are the current queries in a random order; supervision index = that
      order.
    * ``wa``: ``w·F + (1 − w)·F[shuffle]`` with ``w ~ U(0, 1)`` per query; the supervision index
      is the shuffled query where ``w < 0.5`` and the query itself otherwise.
    * ``cc``: channel cut: the first ``k`` channels (``k`` uniform in ``[0, C)`` per query) from
      the query, the rest from a shuffled query; supervision index shuffled where ``k < C // 2``.

    As in the reference, a noised frame starts from the *unmatched* current queries (segmenter
    order), not from the Hungarian alignment.

    Args:
        matched: [B, Q] Hungarian permutation of this frame.
        identity: [B, Q, C] the current frame's un-normed segmenter embeddings (segmenter order).
        mode, ratio: noise mode and per-frame probability.
        generator: CPU generator for every random draw (global torch RNG if None).

    Returns:
        indices [B, Q] (supervision indices: ``matched`` where not noised), the layer-0 identity
        [B, Q, C], and ``noised`` [B] bool.
    """
    if mode not in NOISE_MODES:
        raise ValueError(f"noise mode must be one of {NOISE_MODES}, got {mode!r}")
    batch, num_queries, channels = identity.shape
    indices = matched.clone()
    rows = [_gather_queries(identity[b], matched[b]) for b in range(batch)]
    noised = torch.zeros(batch, dtype=torch.bool)
    if mode == "none" or ratio <= 0.0:
        return indices, torch.stack(rows), noised.to(identity.device)
    arange = torch.arange(num_queries)
    for b in range(batch):
        if float(torch.rand((), generator=generator)) >= ratio:
            continue
        noised[b] = True
        cur = identity[b]  # [Q, C]
        shuffle = torch.randperm(num_queries, generator=generator)
        shuffled = _gather_queries(cur, shuffle)
        if mode == "rs":
            rows[b] = shuffled
            indices[b] = shuffle.to(indices.device)
        elif mode == "wa":
            weight = torch.rand(num_queries, generator=generator)
            w = weight.to(cur)[:, None]
            rows[b] = cur * w + shuffled * (1.0 - w)
            indices[b] = torch.where(weight < 0.5, shuffle, arange).to(indices.device)
        else:  # "cc"
            cut = torch.randint(0, channels, (num_queries,), generator=generator)
            keep = (torch.arange(channels)[None, :] < cut[:, None]).to(cur)  # [Q, C]
            rows[b] = cur * keep + shuffled * (1.0 - keep)
            indices[b] = torch.where(cut < channels // 2, shuffle, arange).to(indices.device)
    return indices, torch.stack(rows), noised.to(identity.device)
