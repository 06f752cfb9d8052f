"""Noisy predictions: the ground truth with planted, documented errors, in the submission formats.

The errors are those of the metrics oracle's manifest (``fixtures/metrics_oracle``): missed and
truncated tracks, shifted and dilated masks, wrong classes (whole track or from a frame on),
identity switches (two tracks swap ids, or a track gets a new id), false-positive tracks,
predictions on void, stuff regions split into two ids or predicted as another class for a few
frames, things that flicker in and out, and unlabeled (id 0) patches.

A prediction is built on *track ids*: every pixel starts with its GT raw panomask value (so a
GT track is one predicted track); perturbations rewrite these maps and the per-frame category of
each track, and finally each track gets one RGB id for the whole video (stuff: the category
colour, like DVIS's writer; others: seeded random colours). Removing a thing reveals the stuff
rendered behind it. Each thing track receives at most one track-level perturbation so that every
planted error stays identifiable in the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from vidpan.data.formats.rgb_id import color_to_id
from vidpan.data.formats.vipseg import SegmentInfo, raw_to_category
from vidpan.data.synthetic.categories import CATEGORIES, STUFF_IDS, THING_IDS
from vidpan.data.synthetic.scene import Scene

KINDS: tuple[str, ...] = (
    "missed_track",
    "truncated_track",
    "shifted_mask",
    "dilated_mask",
    "wrong_class",
    "class_switch",
    "id_swap",
    "new_id",
    "thing_flicker",
    "split_stuff",
    "stuff_flicker",
    "false_positive",
    "void_prediction",
    "unlabeled_patches",
)
_FIRST_NEW_TRACK = 1 << 20  # above every raw panomask value


@dataclass
class PredictedVideo:
    """One video's noisy prediction, ready to write."""

    id_maps: list[np.ndarray]  # [H, W] uint32 RGB ids per frame (0 unlabeled)
    segments: list[list[SegmentInfo]]  # per frame
    semantic: list[np.ndarray]  # [H, W] uint8 0-based classes per frame (VSS prediction)
    perturbations: list[dict[str, Any]]  # planted errors: type, track names, frames, description


class _Builder:
    def __init__(
        self, scene: Scene, raws: np.ndarray, stuff_raws: np.ndarray, rng: np.random.Generator
    ) -> None:
        self.scene, self.raws, self.stuff_raws, self.rng = scene, raws, stuff_raws, rng
        self.t = raws.shape[0]
        self.maps = raws.astype(np.int32)  # [T, H, W] track ids
        # Raw values present per frame (bincount: much cheaper than np.unique on large frames).
        present = [set(np.flatnonzero(np.bincount(r.ravel())).tolist()) for r in raws]
        self.cats: dict[int, np.ndarray] = {}
        for value in sorted(set().union(*present)):
            if value:
                self.cats[value] = np.full(self.t, int(raw_to_category(np.array(value))), dtype=np.int64)
        self.names = {th.raw: th.name for th in scene.things}
        self.visible = {
            v: [i for i in range(self.t) if v in present[i]]
            for v in self.names
            if any(v in p for p in present)
        }
        self.stuff_tracks = sorted(v for v in self.cats if v < 125)
        self.used: set[int] = set()
        self.next_id = _FIRST_NEW_TRACK
        self.log: list[dict[str, Any]] = []

    # -- helpers -------------------------------------------------------------------------
    def new_track(self, category: int | np.ndarray) -> int:
        tid = self.next_id
        self.next_id += 1
        self.cats[tid] = np.broadcast_to(np.asarray(category, dtype=np.int64), (self.t,)).copy()
        return tid

    def pick_track(self, min_frames: int = 1) -> int | None:
        free = [v for v, fr in self.visible.items() if v not in self.used and len(fr) >= min_frames]
        if not free:
            return None
        v = int(self.rng.choice(sorted(free)))
        self.used.add(v)
        return v

    def remove(self, v: int, frames: list[int]) -> None:
        for i in frames:
            sel = self.maps[i] == v
            self.maps[i][sel] = self.stuff_raws[i][sel]

    def other_class(self, current: int, pool: tuple[int, ...]) -> int:
        return int(self.rng.choice([c for c in pool if c != current]))

    def record(self, kind: str, description: str, **info: Any) -> None:
        self.log.append({"type": kind, "description": description, **info})

    # -- perturbations -------------------------------------------------------------------
    def missed_track(self) -> None:
        v = self.pick_track()
        if v is not None:
            self.remove(v, list(range(self.t)))
            self.record("missed_track", f"track {self.names[v]} missed entirely", track=self.names[v])

    def truncated_track(self) -> None:
        v = self.pick_track(min_frames=3)
        if v is not None:
            fr = self.visible[v]
            last = int(self.rng.choice(fr[:-1]))
            self.remove(v, list(range(last + 1, self.t)))
            self.record(
                "truncated_track",
                f"track {self.names[v]} stops being predicted after frame {last}",
                track=self.names[v],
                frame=last,
            )

    def _frame_range(self, v: int) -> list[int]:
        fr = self.visible[v]
        a = int(self.rng.integers(0, len(fr)))
        b = int(self.rng.integers(a, min(len(fr), a + max(2, self.t // 3))))
        return fr[a : b + 1]

    def shifted_mask(self) -> None:
        v = self.pick_track()
        if v is None:
            return
        frames = self._frame_range(v)
        h, w = self.maps.shape[1:]
        mag = max(2, round(0.06 * min(h, w)))
        dy, dx = (int(self.rng.integers(mag // 2, mag + 1)) * int(self.rng.choice([-1, 1])) for _ in range(2))
        for i in frames:
            sel = self.maps[i] == v
            self.maps[i][sel] = self.stuff_raws[i][sel]
            moved = np.zeros_like(sel)
            src = sel[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
            moved[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
            self.maps[i][moved] = v
        self.record(
            "shifted_mask",
            f"track {self.names[v]} mask shifted by (dy={dy}, dx={dx}) in frames {frames[0]}..{frames[-1]}",
            track=self.names[v],
            frames=frames,
            shift=[dy, dx],
        )

    def dilated_mask(self) -> None:
        v = self.pick_track()
        if v is None:
            return
        frames = self._frame_range(v)
        radius = max(1, round(0.02 * min(self.maps.shape[1:])))
        for i in frames:
            grown = ndimage.binary_dilation(self.maps[i] == v, iterations=radius)
            self.maps[i][grown] = v
        self.record(
            "dilated_mask",
            f"track {self.names[v]} mask dilated by {radius} px in frames {frames[0]}..{frames[-1]}",
            track=self.names[v],
            frames=frames,
            radius=radius,
        )

    def wrong_class(self) -> None:
        v = self.pick_track()
        if v is not None:
            c = self.other_class(int(self.cats[v][0]), THING_IDS)
            self.cats[v][:] = c
            self.record(
                "wrong_class",
                f"track {self.names[v]} predicted with wrong class {c}",
                track=self.names[v],
                category_id=c,
            )

    def class_switch(self) -> None:
        v = self.pick_track(min_frames=2)
        if v is not None:
            start = int(self.rng.choice(self.visible[v][1:]))
            c = self.other_class(int(self.cats[v][0]), THING_IDS)
            self.cats[v][start:] = c
            self.record(
                "class_switch",
                f"track {self.names[v]} switches class to {c} at frame {start} (same id)",
                track=self.names[v],
                frame=start,
                category_id=c,
            )

    def id_swap(self) -> None:
        # Prefer a planned same-class crossing (the realistic tracking failure).
        by_name = {n: r for r, n in self.names.items()}
        pairs = [(by_name[a], by_name[b]) for a, b in self.scene.crossings]
        pairs += [(a, b) for a in self.visible for b in self.visible if a < b]
        for a, b in pairs:
            if a in self.used or b in self.used or a not in self.visible or b not in self.visible:
                continue
            both = sorted(set(self.visible[a]) & set(self.visible[b]))
            later = [i for i in both if i > min(self.visible[a][0], self.visible[b][0])]
            if not later:
                continue
            start = int(self.rng.choice(later))
            self.used |= {a, b}
            for i in range(start, self.t):
                sa, sb = self.maps[i] == a, self.maps[i] == b
                self.maps[i][sa], self.maps[i][sb] = b, a
            ca, cb = self.cats[a][start:].copy(), self.cats[b][start:].copy()
            self.cats[a][start:], self.cats[b][start:] = cb, ca
            na, nb = self.names[a], self.names[b]
            self.record(
                "id_swap", f"tracks {na} and {nb} swap ids at frame {start}", tracks=[na, nb], frame=start
            )
            return

    def new_id(self) -> None:
        v = self.pick_track(min_frames=2)
        if v is not None:
            start = int(self.rng.choice(self.visible[v][1:]))
            n = self.new_track(self.cats[v])
            for i in range(start, self.t):
                self.maps[i][self.maps[i] == v] = n
            self.record(
                "new_id",
                f"track {self.names[v]} gets a new id from frame {start}",
                track=self.names[v],
                frame=start,
            )

    def thing_flicker(self) -> None:
        v = self.pick_track(min_frames=4)
        if v is not None:
            dropped = self.visible[v][1::2]
            self.remove(v, dropped)
            self.record(
                "thing_flicker",
                f"track {self.names[v]} missing in every other visible frame ({len(dropped)} frames)",
                track=self.names[v],
                frames=dropped,
            )

    def split_stuff(self) -> None:
        if not self.stuff_tracks:
            return
        v = int(self.rng.choice(self.stuff_tracks))
        w = self.maps.shape[2]
        x = int(self.rng.integers(w // 4, 3 * w // 4 + 1))
        start = int(self.rng.integers(0, max(1, self.t // 2)))
        n = self.new_track(self.cats[v])
        for i in range(start, self.t):
            self.maps[i][:, x:][self.maps[i][:, x:] == v] = n
        c = int(self.cats[v][0])
        self.record(
            "split_stuff",
            f"stuff {CATEGORIES[c].name} split at x={x} into two ids from frame {start}",
            category_id=c,
            x=x,
            frame=start,
        )

    def stuff_flicker(self) -> None:
        if not self.stuff_tracks:
            return
        v = int(self.rng.choice(self.stuff_tracks))
        a = int(self.rng.integers(0, self.t))
        b = min(self.t - 1, a + int(self.rng.integers(0, 3)))
        old = int(self.cats[v][a])
        c = self.other_class(old, STUFF_IDS)
        self.cats[v][a : b + 1] = c
        self.record(
            "stuff_flicker",
            f"stuff {CATEGORIES[old].name} predicted as {c} for frames {a}..{b}",
            category_id=old,
            predicted_category_id=c,
            frames=list(range(a, b + 1)),
        )

    def false_positive(self) -> None:
        h, w = self.maps.shape[1:]
        c = int(self.rng.choice(THING_IDS))
        a = int(self.rng.integers(0, self.t))
        b = int(self.rng.integers(a, self.t))
        n = self.new_track(c)
        ry, rx = (self.rng.uniform(0.06, 0.14) * h for _ in range(2))
        y0, x0 = self.rng.uniform(0.2, 0.8) * h, self.rng.uniform(0.2, 0.8) * w
        vy, vx = self.rng.uniform(-0.01, 0.01) * h, self.rng.uniform(-0.03, 0.03) * w
        yy, xx = np.arange(h)[:, None], np.arange(w)[None, :]
        for i in range(a, b + 1):
            cy, cx = y0 + vy * (i - a), x0 + vx * (i - a)
            self.maps[i][((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0] = n
        self.record(
            "false_positive",
            f"false-positive track of class {c} in frames {a}..{b}",
            category_id=c,
            frames=list(range(a, b + 1)),
        )

    def void_prediction(self) -> None:
        void_frames = [i for i in range(self.t) if (self.raws[i] == 0).any()]
        if not void_frames:
            return
        start = int(self.rng.choice(void_frames))
        c = int(self.rng.integers(0, len(CATEGORIES)))
        n = self.new_track(c)
        for i in range(start, self.t):
            self.maps[i][self.raws[i] == 0] = n
        self.record(
            "void_prediction",
            f"class {c} predicted on the GT void region from frame {start}",
            category_id=c,
            frame=start,
        )

    def unlabeled_patches(self) -> None:
        h, w = self.maps.shape[1:]
        k = int(self.rng.integers(1, max(2, self.t // 2) + 1))
        frames = sorted(int(i) for i in self.rng.choice(self.t, size=min(k, self.t), replace=False))
        for i in frames:
            ph, pw = max(1, int(self.rng.uniform(0.1, 0.3) * h)), max(1, int(self.rng.uniform(0.1, 0.3) * w))
            y0, x0 = int(self.rng.integers(0, h - ph + 1)), int(self.rng.integers(0, w - pw + 1))
            self.maps[i][y0 : y0 + ph, x0 : x0 + pw] = 0
        self.record("unlabeled_patches", f"{len(frames)} frames with unlabeled (id 0) patches", frames=frames)

    # -- output --------------------------------------------------------------------------
    def finish(self) -> PredictedVideo:
        tracks = np.asarray(sorted(self.cats), dtype=np.int32)  # every track id ever created
        tracks = np.concatenate([[0], tracks]).astype(np.int32)
        lut = np.zeros(len(tracks), dtype=np.uint32)
        taken = {0}
        for j, tid in enumerate(tracks.tolist()[1:], start=1):
            if tid < 125:  # an original stuff track keeps its category colour, as DVIS writes
                rid = color_to_id(CATEGORIES[tid - 1].color)
            else:
                rid = int(self.rng.integers(1, 1 << 24))
                while rid in taken:
                    rid = int(self.rng.integers(1, 1 << 24))
            taken.add(rid)
            lut[j] = rid
        cats = np.stack([np.zeros(self.t, np.int64)] + [self.cats[v] for v in tracks.tolist()[1:]])  # [K, T]
        id_maps, segments, semantic = [], [], []
        for i in range(self.t):
            index = np.searchsorted(tracks, self.maps[i])  # [H, W] position of each pixel's track
            counts = np.bincount(index.ravel(), minlength=len(tracks))
            cls = cats[:, i].astype(np.uint8)
            id_maps.append(lut[index])
            semantic.append(cls[index])
            segments.append(
                [
                    SegmentInfo(int(lut[j]), int(cats[j, i]), 0, int(counts[j]))
                    for j in np.flatnonzero(counts).tolist()
                    if j
                ]
            )
        return PredictedVideo(id_maps, segments, semantic, self.log)


def perturb_video(
    scene: Scene,
    raws: np.ndarray,
    stuff_raws: np.ndarray,
    rng: np.random.Generator,
    *,
    kinds: tuple[str, ...] | None = None,
) -> PredictedVideo:
    """Plant errors into one video's ground truth.

    Args:
        scene: the scene the frames were rendered from (track names, crossings).
        raws: [T, H, W] GT panomask values.
        stuff_raws: [T, H, W] panomask values without the things (revealed when a thing is removed).
        rng: the video's prediction generator.
        kinds: perturbations to apply (default: 3–5 drawn at random from :data:`KINDS`). They are
            applied in :data:`KINDS` order (track-level errors before stuff, false positives,
            void and unlabeled patches); a kind that does not apply (no free track, no void) is
            skipped and absent from the log.
    """
    if kinds is None:
        count = int(rng.integers(3, 6))
        kinds = tuple(str(k) for k in rng.choice(KINDS, size=count, replace=False))
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown perturbation kinds {sorted(unknown)}")
    builder = _Builder(scene, raws, stuff_raws, rng)
    for kind in KINDS:
        if kind in kinds:
            getattr(builder, kind)()
    return builder.finish()
