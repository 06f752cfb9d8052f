"""The synthetic benchmark's difficulty knobs and random scene model.

A scene is everything needed to render one video, sampled from one seeded generator:

- **stuff**: 2–4 textured regions laid out in a *world* canvas larger than the frame — horizontal
  bands with wavy boundaries, optionally with a blob region on top;
- **camera**: a smooth pan (integer offsets into the world canvas), so the whole background shifts;
- **void**: optional world-fixed "unlabeled clutter" blobs (raw panomask 0; VSPW 0 or 255);
- **things**: instances with a class shape, a class-coloured outline (the class cue) and a
  per-instance fill colour and pattern (the identity cue), moving on smooth screen-space
  trajectories in a fixed depth order. Roles make tracking necessary: ``enter`` / ``leave``
  instances cross a frame edge during the video, ``wander`` instances stay in view, and
  ``cross`` pairs are two instances of the same class that pass each other (one occluding the
  other) around the middle of the video.

Rendering is in :mod:`vidpan.data.synthetic.render`; nothing here touches pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vidpan.data.synthetic.categories import (
    PATTERNS,
    STUFF_HEIGHT,
    STUFF_IDS,
    THING_ASPECT,
    THING_IDS,
    THING_SIZE,
    THING_Y,
)


@dataclass(frozen=True)
class Difficulty:
    """Knobs of one difficulty level (ranges are sampled uniformly per video)."""

    name: str
    stuff_classes: tuple[int, int]  # number of stuff classes per video (inclusive range)
    things: tuple[int, int]  # instances per video, not counting crossing pairs
    crossing_pairs: tuple[int, int]  # same-class pairs that pass each other
    speed: tuple[float, float]  # thing speed, fraction of the frame width per frame
    pan: tuple[float, float]  # camera speed, fraction of the frame width per frame
    height: tuple[float, float]  # person height, fraction of the frame height
    scale_change: float  # max relative size change over the video
    wobble: float  # vertical wobble amplitude, fraction of the instance height
    void_prob: float  # probability that a video has a void blob
    blob_prob: float  # probability of a blob stuff region on top of the bands
    noise_sigma: float  # per-pixel Gaussian noise (uint8 levels)
    flicker: float  # per-frame brightness jitter (relative)


DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty(
        name="easy",
        stuff_classes=(2, 3),
        things=(1, 2),
        crossing_pairs=(1, 1),
        speed=(0.01, 0.025),
        pan=(0.0, 0.01),
        height=(0.35, 0.55),
        scale_change=0.15,
        wobble=0.03,
        void_prob=0.0,
        blob_prob=0.2,
        noise_sigma=2.0,
        flicker=0.0,
    ),
    "medium": Difficulty(
        name="medium",
        stuff_classes=(2, 4),
        things=(2, 3),
        crossing_pairs=(1, 1),
        speed=(0.015, 0.04),
        pan=(0.004, 0.02),
        height=(0.3, 0.55),
        scale_change=0.3,
        wobble=0.05,
        void_prob=0.3,
        blob_prob=0.4,
        noise_sigma=4.0,
        flicker=0.02,
    ),
    "hard": Difficulty(
        name="hard",
        stuff_classes=(3, 4),
        things=(3, 5),
        crossing_pairs=(1, 2),
        speed=(0.025, 0.06),
        pan=(0.01, 0.035),
        height=(0.22, 0.55),
        scale_change=0.5,
        wobble=0.08,
        void_prob=0.5,
        blob_prob=0.6,
        noise_sigma=6.0,
        flicker=0.05,
    ),
}


@dataclass
class Appearance:
    """Per-instance look: fill colours and a pattern attached to the object (moves and scales with it)."""

    pattern: str
    primary: tuple[int, int, int]
    secondary: tuple[int, int, int]
    frequency: float  # pattern cycles per half-height
    angle: float  # stripe direction (radians)


@dataclass
class Thing:
    """One thing instance and its whole trajectory (screen coordinates, one value per frame)."""

    name: str  # "g<j>", the manifest's handle
    category: int
    instance: int  # k of the raw value (category + 1) * 100 + k, per class and video
    depth: int  # painting order: higher is nearer (occludes lower)
    role: str  # "enter", "leave", "wander" or "cross"
    cx: np.ndarray  # [T] float centre x (pixels)
    cy: np.ndarray  # [T] float centre y
    height: np.ndarray  # [T] float bounding-box height (pixels)
    appearance: Appearance

    @property
    def raw(self) -> int:
        return (self.category + 1) * 100 + self.instance


@dataclass
class StuffLayout:
    """Stuff regions in world coordinates: ``bands`` top to bottom, then an optional blob class."""

    bands: list[int]  # stuff category ids, top to bottom
    # One wavy boundary per adjacent pair: base y (world pixels) and sine terms (amp, period, phase).
    boundaries: list[tuple[float, list[tuple[float, float, float]]]]
    blob: int | None = None  # stuff category of the blob region
    blob_centre: tuple[float, float] = (0.0, 0.0)  # world (y, x)
    blob_radius: tuple[float, float] = (0.0, 0.0)  # (ry, rx)
    blob_wave: list[tuple[float, float, float]] = field(default_factory=list)  # (amp, freq, phase)


@dataclass
class VoidRegion:
    """A world-fixed unlabeled blob: raw 0 in panomasks, ``vspw_label`` (0 others / 255 void) in VSPW."""

    centre: tuple[float, float]  # world (y, x)
    radius: tuple[float, float]  # (ry, rx)
    vspw_label: int


@dataclass
class Scene:
    """Everything needed to render one video."""

    video_id: str
    frames: int
    height: int
    width: int
    difficulty: Difficulty
    stuff: StuffLayout
    camera: np.ndarray  # [T, 2] int (y, x) offset of the frame in the world canvas
    canvas: tuple[int, int]  # world canvas (height, width)
    things: list[Thing]
    voids: list[VoidRegion]
    crossings: list[tuple[str, str]]  # names of same-class pairs planned to pass each other
    brightness: np.ndarray  # [T] float multiplicative flicker


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return (round(r * 255), round(g * 255), round(b * 255))


def _sample_camera(rng: np.random.Generator, d: Difficulty, t: int, w: int) -> np.ndarray:
    """[T, 2] integer (y, x) offsets of a smooth pan, shifted so the minimum is 0."""
    speed = rng.uniform(*d.pan) * w * rng.choice([-1.0, 1.0])
    vy = speed * rng.uniform(-0.15, 0.15)
    accel = rng.uniform(-0.5, 0.5)  # relative change of speed over the video
    steps = np.arange(t, dtype=np.float64)
    ramp = 1.0 + accel * (steps / max(t - 1, 1) - 0.5)
    pos = np.stack([np.cumsum(vy * ramp) - vy * ramp[0], np.cumsum(speed * ramp) - speed * ramp[0]], axis=1)
    cam = np.rint(pos).astype(np.int64)
    return cam - cam.min(axis=0)


def _sample_stuff(
    rng: np.random.Generator, d: Difficulty, h: int, canvas: tuple[int, int], cam_y_mean: float
) -> StuffLayout:
    n = int(rng.integers(d.stuff_classes[0], d.stuff_classes[1] + 1))
    use_blob = n >= 3 and rng.random() < d.blob_prob
    chosen = [int(c) for c in rng.choice(STUFF_IDS, size=n, replace=False)]
    blob = chosen.pop() if use_blob else None
    bands = sorted(chosen, key=lambda c: STUFF_HEIGHT[c])
    boundaries = []
    for k in range(1, len(bands)):
        base = cam_y_mean + h * (k / len(bands) + rng.uniform(-0.08, 0.08))
        waves = [
            (h * rng.uniform(0.02, 0.08), h * rng.uniform(0.8, 2.5), rng.uniform(0, 2 * np.pi)),
            (h * rng.uniform(0.0, 0.03), h * rng.uniform(0.2, 0.6), rng.uniform(0, 2 * np.pi)),
        ]
        boundaries.append((float(base), [(float(a), float(p), float(f)) for a, p, f in waves]))
    layout = StuffLayout(bands, boundaries)
    if blob is not None:
        layout.blob = blob
        layout.blob_centre = (
            float(cam_y_mean + h * rng.uniform(0.25, 0.75)),
            float(rng.uniform(0.2, 0.8) * canvas[1]),
        )
        layout.blob_radius = (float(h * rng.uniform(0.15, 0.3)), float(h * rng.uniform(0.25, 0.5)))
        layout.blob_wave = [
            (float(rng.uniform(0.05, 0.2)), float(f), float(rng.uniform(0, 2 * np.pi))) for f in (3, 5)
        ]
    return layout


def _appearances(rng: np.random.Generator, n: int) -> list[Appearance]:
    """Distinct looks for the ``n`` instances of a video: hues spread around the circle."""
    offset = rng.random()
    hues = (offset + (np.arange(n) + rng.uniform(-0.15, 0.15, size=n)) / max(n, 1)) % 1.0
    out = []
    for hue in rng.permutation(hues):
        sat, val = rng.uniform(0.55, 0.95), rng.uniform(0.55, 0.95)
        primary = _hsv_to_rgb(float(hue), sat, val)
        secondary = _hsv_to_rgb(float((hue + rng.uniform(0.3, 0.7)) % 1.0), rng.uniform(0.2, 0.9), val * 0.6)
        out.append(
            Appearance(
                pattern=str(rng.choice(PATTERNS)),
                primary=primary,
                secondary=secondary,
                frequency=float(rng.uniform(1.0, 2.2)),
                angle=float(rng.uniform(0, np.pi)),
            )
        )
    return out


def _trajectory(
    rng: np.random.Generator, d: Difficulty, role: str, cat: int, t: int, h: int, w: int, size: float
) -> tuple[np.ndarray, np.ndarray]:
    """Centre (x, y) per frame for one instance of class ``cat`` and ``role`` (not ``cross``)."""
    steps = np.arange(t, dtype=np.float64)
    speed = rng.uniform(*d.speed) * w
    half_w = 0.5 * size * THING_ASPECT[cat]
    direction = rng.choice([-1.0, 1.0])
    if role == "enter":
        # Just outside an edge at frame t_in, then moving into the frame.
        t_in = rng.uniform(0.5, max(0.5, 0.5 * t))
        edge = -half_w if direction > 0 else w + half_w
        x = edge + direction * speed * (steps - t_in)
    elif role == "leave":
        t_out = rng.uniform(0.5 * t, max(0.5 * t, t - 1.5))
        edge = w + half_w if direction > 0 else -half_w
        x = edge + direction * speed * (steps - t_out)
    else:  # wander: a slow drift plus a sway, staying near its start
        x0 = rng.uniform(0.2, 0.8) * w
        x = (
            x0
            + 0.3 * direction * speed * steps
            + 0.1 * w * np.sin(2 * np.pi * steps / rng.uniform(10, 30) + rng.uniform(0, 2 * np.pi))
        )
    lo, hi = THING_Y[cat]
    y0 = rng.uniform(lo, hi) * h
    drift = rng.uniform(-0.15, 0.15) * speed
    y = (
        y0
        + drift * (steps - 0.5 * t)
        + d.wobble * size * np.sin(2 * np.pi * steps / rng.uniform(6, 16) + rng.uniform(0, 2 * np.pi))
    )
    return x, y


def _heights(rng: np.random.Generator, d: Difficulty, cat: int, t: int, h: int) -> np.ndarray:
    size = rng.uniform(*d.height) * h * THING_SIZE[cat]
    change = rng.uniform(-d.scale_change, d.scale_change)
    ramp = np.arange(t, dtype=np.float64) / max(t - 1, 1) - 0.5
    return size * (1.0 + change * ramp)


def sample_scene(
    rng: np.random.Generator, *, video_id: str, frames: int, height: int, width: int, difficulty: Difficulty
) -> Scene:
    """Sample one scene (see the module docstring for the model)."""
    d, t, h, w = difficulty, frames, height, width
    camera = _sample_camera(rng, d, t, w)
    canvas = (h + int(camera[:, 0].max()), w + int(camera[:, 1].max()))
    stuff = _sample_stuff(rng, d, h, canvas, float(camera[:, 0].mean()))

    # Instances: crossing pairs first (same class), then single instances with random roles.
    n_pairs = int(rng.integers(d.crossing_pairs[0], d.crossing_pairs[1] + 1))
    n_single = int(rng.integers(d.things[0], d.things[1] + 1))
    plan: list[tuple[int, str]] = []
    pair_classes = [int(c) for c in rng.choice(THING_IDS, size=n_pairs, replace=False)]
    for c in pair_classes:
        plan += [(c, "cross"), (c, "cross")]
    roles = ["enter", "leave", "wander"]
    for j in range(n_single):
        # The first singles cover "enter" and "leave" so every video has both when it has >= 2.
        role = roles[j] if j < 2 else str(rng.choice(roles))
        plan.append((int(rng.choice(THING_IDS)), role))
    looks = _appearances(rng, len(plan))
    depths = rng.permutation(len(plan))
    counters: dict[int, int] = {}
    things: list[Thing] = []
    crossings: list[tuple[str, str]] = []
    j = 0
    while j < len(plan):
        cat, role = plan[j]
        if role == "cross":
            # Two same-class instances meet at (xm, ym) at frame tm moving in opposite directions.
            tm = rng.uniform(0.35, 0.65) * (t - 1)
            xm = rng.uniform(0.35, 0.65) * w
            lo, hi = THING_Y[cat]
            ym = rng.uniform(lo, hi) * h
            steps = np.arange(t, dtype=np.float64)
            pair = []
            for sign in (1.0, -1.0):
                hgt = _heights(rng, d, cat, t, h)
                speed = rng.uniform(*d.speed) * w
                x = xm + sign * speed * (steps - tm)
                dy = rng.uniform(-0.15, 0.15) * hgt[0]
                y = (
                    ym
                    + dy
                    + d.wobble * hgt[0] * np.sin(2 * np.pi * steps / rng.uniform(6, 16) + rng.uniform(0, 6.3))
                )
                pair.append((x, y, hgt))
            names = []
            for x, y, hgt in pair:
                k = counters.get(cat, 0)
                counters[cat] = k + 1
                name = f"g{len(things)}"
                things.append(Thing(name, cat, k, int(depths[j]), "cross", x, y, hgt, looks[j]))
                names.append(name)
                j += 1
            crossings.append((names[0], names[1]))
            continue
        hgt = _heights(rng, d, cat, t, h)
        x, y = _trajectory(rng, d, role, cat, t, h, w, float(hgt.mean()))
        k = counters.get(cat, 0)
        counters[cat] = k + 1
        things.append(Thing(f"g{len(things)}", cat, k, int(depths[j]), role, x, y, hgt, looks[j]))
        j += 1

    voids = []
    if rng.random() < d.void_prob:
        voids.append(
            VoidRegion(
                centre=(
                    float(camera[:, 0].mean() + rng.uniform(0.2, 0.8) * h),
                    float(rng.uniform(0.1, 0.9) * canvas[1]),
                ),
                radius=(float(rng.uniform(0.06, 0.15) * h), float(rng.uniform(0.06, 0.2) * h)),
                vspw_label=int(rng.choice([0, 255])),
            )
        )
    brightness = 1.0 + d.flicker * rng.uniform(-1.0, 1.0, size=t)
    return Scene(video_id, t, h, w, d, stuff, camera, canvas, things, voids, crossings, brightness)
