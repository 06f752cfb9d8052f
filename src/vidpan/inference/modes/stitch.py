"""Long mode's identity stitching: one id per object across refiner chunks.

The tracker's slot is a good identity inside a chunk, but across chunks the refiner can move an
object's mask to another slot (two queries of one class take turns), which would end one track
at the chunk boundary and start another. Consecutive chunks share ``chunk_overlap`` frames, and
both decide those frames: a segment of the new chunk that covers (IoU ≥ :data:`MIN_IOU` over the
shared frames) a segment of the same class in the previous chunk takes that segment's id. Other
thing segments keep the id their slot had in the previous chunk (``1 + slot`` the first time);
an id claimed twice goes to the better match and the other segment gets a fresh id above every
slot-stable id. Stuff ids are one per class (``1 + Q + class``) and need no stitching.

Inside a chunk, :func:`merge_duplicates` first makes each object one query (two queries of one
class covering one object would otherwise both fail the VPS overlap test, or split it).

Memory: the previous chunk's decisions on the shared frames ([overlap, H, W] int32).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from vidpan.inference.masks import class_probabilities
from vidpan.structures import PanopticFrame, Segment

MIN_IOU = 0.5
MIN_SIMILARITY = 0.7  # cosine of mean refined query embeddings, to re-identify a track
CLEARED = -1e4  # mask logit of a merged-away query: sigmoid 0, never foreground


@dataclass
class Stitcher:
    """State carried from chunk to chunk (see the module docstring)."""

    fresh: int  # next unused id (above the slot-stable ids 1 .. Q + K)
    alias: dict[int, int] = field(default_factory=dict)  # chunk id of a thing slot -> output id
    tail: list[PanopticFrame] = field(default_factory=list)  # previous chunk, shared frames
    # Thing tracks seen so far: output id -> (class, unit mean query embedding [C]).
    memory: dict[int, tuple[int, np.ndarray]] = field(default_factory=dict)

    def relabel(
        self, frames: list[PanopticFrame], shared: int, embeds: np.ndarray | None = None
    ) -> list[PanopticFrame]:
        """Output ids for one chunk's decided frames (positions 0..n-1 of the chunk); keep the
        chunk's last ``shared`` frames for the next chunk. ``embeds``: [Q, C] the chunk's mean
        refined query embedding per slot (re-identifies a track that left for a chunk)."""
        segments = {s.id: s for f in frames for s in f.segments}
        matches = _overlap_matches(self.tail, frames[: len(self.tail)], segments)
        mapping: dict[int, int] = {}
        taken: set[int] = set()
        for new, old in matches:  # best IoU first
            if new not in mapping and old not in taken:
                mapping[new] = old
                taken.add(old)
        for sid, seg in sorted(segments.items()):  # tracks continuing in their slot; stuff
            if sid in mapping:
                continue
            target = self.alias.get(sid) if seg.isthing else sid
            if target is not None and target not in taken:
                mapping[sid] = target
                taken.add(target)
        unit = None
        if embeds is not None:  # new segments: a track seen before, by its query embedding
            unit = embeds / np.maximum(np.linalg.norm(embeds, axis=1, keepdims=True), 1e-6)
            scored = [
                (float(unit[seg.track] @ e), sid, out)
                for sid, seg in segments.items()
                if seg.isthing and sid not in mapping
                for out, (label, e) in self.memory.items()
                if label == seg.category_id and out not in taken
            ]
            for sim, sid, out in sorted(scored, reverse=True):
                if sim >= MIN_SIMILARITY and sid not in mapping and out not in taken:
                    mapping[sid] = out
                    taken.add(out)
        for sid in sorted(segments):  # the rest: their slot's id, unless some track had it
            if sid not in mapping:
                target = sid if sid not in taken and sid not in self.memory else self.fresh
                if target == self.fresh:
                    self.fresh += 1
                mapping[sid] = target
                taken.add(target)
        self.alias = {sid: out for sid, out in mapping.items() if segments[sid].isthing}
        if unit is not None:
            for sid, target in self.alias.items():
                self.memory[target] = (segments[sid].category_id, unit[segments[sid].track])
        relabelled = [_remap(f, mapping) for f in frames]
        self.tail = relabelled[len(relabelled) - shared :] if shared else []
        return relabelled


def _overlap_matches(
    old: list[PanopticFrame], new: list[PanopticFrame], segments: dict[int, Segment]
) -> list[tuple[int, int]]:
    """(new id, old id) pairs of the same class with IoU ≥ MIN_IOU over the shared frames,
    best IoU first."""
    if not old:
        return []
    a = np.stack([f.segment_ids for f in new]).ravel().astype(np.int64)
    b = np.stack([f.segment_ids for f in old]).ravel().astype(np.int64)
    old_class = {s.id: (s.category_id, s.isthing) for f in old for s in f.segments}
    ids_a, area_a = np.unique(a, return_counts=True)
    ids_b, area_b = np.unique(b, return_counts=True)
    areas_a = dict(zip(ids_a.tolist(), area_a.tolist(), strict=True))
    areas_b = dict(zip(ids_b.tolist(), area_b.tolist(), strict=True))
    both = (a > 0) & (b > 0)
    pairs, inter = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
    scored = []
    for (na, ob), count in zip(pairs.T.tolist(), inter.tolist(), strict=True):
        seg = segments.get(na)
        if seg is None or old_class.get(ob) != (seg.category_id, seg.isthing):
            continue
        iou = count / (areas_a[na] + areas_b[ob] - count)
        if iou >= MIN_IOU:
            scored.append((iou, na, ob))
    return [(na, ob) for _, na, ob in sorted(scored, reverse=True)]


def _remap(frame: PanopticFrame, mapping: dict[int, int]) -> PanopticFrame:
    if all(mapping.get(s.id, s.id) == s.id for s in frame.segments):
        return frame
    ids = frame.segment_ids.copy()
    for s in frame.segments:
        if mapping[s.id] != s.id:
            ids[frame.segment_ids == s.id] = mapping[s.id]
    return replace(frame, segment_ids=ids, segments=[replace(s, id=mapping[s.id]) for s in frame.segments])


def merge_duplicates(
    masks: torch.Tensor,
    class_logits: torch.Tensor,
    aux: torch.Tensor | None,
    *,
    num_things: int,
    threshold: float,
) -> torch.Tensor:
    """One query per object inside a chunk. Two thing queries of one class are duplicates when at
    least :data:`MIN_IOU` of the smaller one's foreground voxels over the chunk (mask logit > 0)
    lie in the other's: the same object twice, or a piece of it. Each group of duplicates is
    merged into its best-scoring query (its mask logits become the group's maximum, the others'
    are cleared). Without this, two duplicates that share an object's pixels both fail the VPS
    overlap test and the object vanishes for a chunk, or a piece of it becomes a short extra
    track; offline, deciding over the whole video, rarely meets either.

    Args:
        masks: [n, Q, h, w] the chunk's mask logits.
        class_logits, aux: [Q, K+1] the chunk's class logits and the tracker's (max-fused).
        num_things: classes below this index are things.
        threshold: ``inference.object_mask_threshold`` (queries at or below it are ignored).

    Returns:
        [n, Q, h, w] mask logits (``masks`` itself when nothing is merged).
    """
    scores, labels = class_probabilities(class_logits, aux).max(-1)  # [Q]
    cand = torch.nonzero((labels < num_things) & (scores > threshold)).flatten().tolist()
    if len(cand) < 2:
        return masks
    fg = (masks[:, cand] > 0).transpose(0, 1).reshape(len(cand), -1).float()  # [k, n*h*w]
    inter = fg @ fg.T  # [k, k] voxels in both
    area = fg.sum(1)
    contained = inter / torch.minimum(area[:, None], area[None]).clamp(min=1)  # of the smaller
    group = list(range(len(cand)))  # union-find over the candidates

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for i in range(len(cand)):
        for j in range(i + 1, len(cand)):
            if labels[cand[i]] == labels[cand[j]] and contained[i, j] >= MIN_IOU:
                group[root(j)] = root(i)
    members: dict[int, list[int]] = {}
    for i, q in enumerate(cand):
        members.setdefault(root(i), []).append(q)
    out = masks
    for queries in members.values():
        if len(queries) < 2:
            continue
        if out is masks:
            out = masks.clone()
        best = max(queries, key=lambda q: float(scores[q]))
        out[:, best] = masks[:, queries].amax(1)
        for q in queries:
            if q != best:
                out[:, q] = CLEARED
    return out
