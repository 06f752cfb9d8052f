"""MinVIS association: segmenter only, queries matched frame to frame (MinVIS; the DVIS++
segmenter's own video inference), for segmenter-only checkpoints and as a baseline.

Per frame, the segmenter's normed query embeddings are matched (Hungarian, 1 − cosine) to the
previous frame's slot-aligned ones and its predictions are re-ordered into those slots; the
rest is :class:`~vidpan.inference.modes.online.OnlineMode`.
"""

from __future__ import annotations

import torch

from vidpan.inference.context import RunContext
from vidpan.inference.window import Window
from vidpan.models.association import match_embeddings


class MinvisAssociation:
    """``previous``: the last frame's slot-aligned embeddings [Q, C] (None before the first)."""

    def __init__(self) -> None:
        self.previous: torch.Tensor | None = None

    def __call__(self, ctx: RunContext, window: Window) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (class logits [t, Q, K+1], mask logits [t, Q, h, w]) in track-slot order."""
        seg = window.seg
        logits, masks = [], []
        with ctx.timer("tracker"):
            previous = self.previous
            for t in range(seg.embeds.shape[0]):
                if previous is None:
                    perm = torch.arange(seg.embeds.shape[1], device=seg.embeds.device)
                else:
                    perm = match_embeddings(previous[None], seg.embeds[t][None])[0]
                previous = seg.embeds[t][perm]
                logits.append(seg.class_logits[t][perm])
                masks.append(seg.mask_logits[t][perm])
            self.previous = previous
        return torch.stack(logits), torch.stack(masks)
