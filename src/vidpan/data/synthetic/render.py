"""Vectorised NumPy rendering of a synthetic :class:`~vidpan.data.synthetic.scene.Scene`.

The static part (stuff labels, procedural stuff textures, void clutter) is rendered once per
video into a world canvas; each frame is a crop of it at the camera offset, with the things
painted back to front. Textures are functions of world coordinates measured in units of
``frame height / 192``, so the same scene looks the same at every resolution and pans
consistently. Every frame yields the RGB image and its labels:

- ``raw``: the VIPSeg panomask (0 void, stuff c + 1, thing (c + 1) * 100 + k);
- ``stuff_raw``: the same without the things (what lies behind them; used to plant prediction
  errors such as missed tracks);
- ``vspw``: VSPW raw labels (c + 1, and 0 "others" / 255 void on void clutter).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from vidpan.data.synthetic.categories import CATEGORIES, THING_ASPECT
from vidpan.data.synthetic.scene import Scene, Thing

_COLOUR = {c.id: np.asarray(c.color, dtype=np.float32) for c in CATEGORIES}


@dataclass
class World:
    """The static world canvas of a video."""

    rgb: np.ndarray  # [Hc, Wc, 3] float32
    raw: np.ndarray  # [Hc, Wc] int32 stuff raw values (0 on void clutter)
    vspw: np.ndarray  # [Hc, Wc] uint8 VSPW raw labels


@dataclass
class Frame:
    """One rendered frame and its labels (all [H, W] at the frame size)."""

    image: np.ndarray  # [H, W, 3] uint8
    raw: np.ndarray  # [H, W] int32 panomask values
    stuff_raw: np.ndarray  # [H, W] int32 panomask values without the things
    vspw: np.ndarray  # [H, W] uint8 VSPW raw labels


# ------------------------------------------------------------------------------------------
# Stuff textures: (y, x, noise) in texture units -> [n, 3] float32 colours
# ------------------------------------------------------------------------------------------

Texture = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _mix(a: tuple[float, float, float], b: tuple[float, float, float], w: np.ndarray) -> np.ndarray:
    w = w[:, None].astype(np.float32)
    return np.asarray(a, np.float32) * (1 - w) + np.asarray(b, np.float32) * w


def _sky(y: np.ndarray, x: np.ndarray, n: np.ndarray) -> np.ndarray:
    grad = np.clip(y / 160.0, 0, 1)
    base = _mix((110, 165, 230), (195, 220, 245), grad)
    cloud = np.sin(x / 23 + 1.3 * np.sin(y / 17)) * np.sin(y / 11 + x / 41)
    return _blend(base, (240, 242, 248), cloud > 0.45, 0.75)


def _water(y: np.ndarray, x: np.ndarray, n: np.ndarray) -> np.ndarray:
    ripple = np.sin(y / 2.5 + 1.5 * np.sin(x / 13))
    out = np.asarray((35, 90, 170), np.float32) + (18 * ripple)[:, None] + (4 * n)[:, None]
    return _blend(out, (170, 210, 240), ripple > 0.93, 0.6)


def _grass(y: np.ndarray, x: np.ndarray, n: np.ndarray) -> np.ndarray:
    blades = np.sin(x / 1.3 + 0.8 * np.sin(y / 5))
    return np.asarray((75, 155, 55), np.float32) + (22 * n + 14 * blades)[:, None] * np.asarray(
        (0.6, 1.0, 0.4), np.float32
    )


def _road(y: np.ndarray, x: np.ndarray, n: np.ndarray) -> np.ndarray:
    out = np.asarray((85, 85, 92), np.float32) + (9 * n)[:, None]
    dash = (np.mod(y, 48) < 3) & (np.mod(x, 40) < 20)
    return _blend(out, (235, 220, 120), dash, 1.0)


def _wall(y: np.ndarray, x: np.ndarray, n: np.ndarray) -> np.ndarray:
    row = np.floor(y / 10)
    xs = x + 12 * np.mod(row, 2)
    col = np.floor(xs / 24)
    # A cheap hash of the brick index varies each brick's tone.
    tone = np.mod(np.sin(row * 12.9898 + col * 78.233) * 43758.5453, 1.0) - 0.5
    out = np.asarray((170, 78, 58), np.float32) + (30 * tone + 5 * n)[:, None]
    mortar = (np.mod(y, 10) < 1.6) | (np.mod(xs, 24) < 1.6)
    return _blend(out, (205, 195, 185), mortar, 1.0)


def _sand(y: np.ndarray, x: np.ndarray, n: np.ndarray) -> np.ndarray:
    dunes = np.sin((x + 4 * np.sin(y / 9)) / 17)
    return np.asarray((215, 192, 138), np.float32) + (10 * dunes + 12 * n)[:, None]


def _forest(y: np.ndarray, x: np.ndarray, n: np.ndarray) -> np.ndarray:
    canopy = np.sin(x / 6) * np.sin(y / 5) + 0.6 * np.sin((x + y) / 9) + 0.35 * n
    return _mix((22, 62, 28), (48, 120, 50), (canopy > 0.1).astype(np.float32))


def _floor(y: np.ndarray, x: np.ndarray, n: np.ndarray) -> np.ndarray:
    plank = np.floor(y / 14)
    shift = np.mod(plank * 37.0, 90.0)
    tone = np.mod(np.sin(plank * 3.7 + np.floor((x + shift) / 90) * 1.9) * 437.5, 1.0) - 0.5
    grain = np.sin(x / 4 + 2 * np.sin(y / 3))
    out = np.asarray((150, 108, 68), np.float32) + (25 * tone + 8 * grain + 3 * n)[:, None]
    seam = (np.mod(y, 14) < 1.2) | (np.mod(x + shift, 90) < 1.2)
    return _blend(out, (70, 50, 35), seam, 1.0)


def _blend(base: np.ndarray, colour: tuple[int, int, int], where: np.ndarray, alpha: float) -> np.ndarray:
    w = (where.astype(np.float32) * alpha)[:, None]
    return base * (1 - w) + np.asarray(colour, np.float32) * w


TEXTURES: dict[int, Texture] = {
    0: _sky,
    2: _water,
    4: _grass,
    6: _road,
    8: _wall,
    10: _sand,
    12: _forest,
    14: _floor,
}


def _void_texture(n: np.ndarray) -> np.ndarray:
    """Grey static: unlabeled clutter that looks like no category."""
    return np.repeat((128 + 55 * n)[:, None], 3, axis=1).astype(np.float32)


def _waves(x: np.ndarray, terms: list[tuple[float, float, float]]) -> np.ndarray:
    out = np.zeros_like(x)
    for amp, period, phase in terms:
        out += amp * np.sin(2 * np.pi * x / period + phase)
    return out


def render_world(scene: Scene, rng: np.random.Generator) -> World:
    """Render the static stuff + void canvas of ``scene``."""
    hc, wc = scene.canvas
    scale = scene.height / 192.0
    y = np.arange(hc, dtype=np.float32)[:, None]
    x = np.arange(wc, dtype=np.float32)[None, :]
    layout = scene.stuff
    # Band index = number of boundaries above the pixel ([Hc, Wc]).
    band = np.zeros((hc, wc), dtype=np.int64)
    for base, terms in layout.boundaries:
        band += y >= base + _waves(x, terms)
    band = np.minimum(band, len(layout.bands) - 1)
    category = np.asarray(layout.bands, dtype=np.int64)[band]
    if layout.blob is not None:
        (by, bx), (ry, rx) = layout.blob_centre, layout.blob_radius
        dy, dx = (y - by) / ry, (x - bx) / rx
        theta = np.arctan2(dy, dx)
        radius = 1.0 + sum(a * np.sin(f * theta + p) for a, f, p in layout.blob_wave)
        category = np.where(dy * dy + dx * dx <= radius * radius, layout.blob, category)
    raw = (category + 1).astype(np.int32)
    vspw = raw.astype(np.uint8)
    void = np.zeros((hc, wc), dtype=bool)
    for region in scene.voids:
        (vy, vx), (ry, rx) = region.centre, region.radius
        dy, dx = (y - vy) / ry, (x - vx) / rx
        theta = np.arctan2(dy, dx)
        inside = dy * dy + dx * dx <= (1.0 + 0.2 * np.sin(4 * theta)) ** 2
        void |= inside
        vspw[inside] = region.vspw_label
    raw[void] = 0

    noise = rng.standard_normal((hc, wc), dtype=np.float32)
    rgb = np.zeros((hc, wc, 3), dtype=np.float32)
    for cat in np.unique(category).tolist():
        sel = (category == cat) & ~void
        ys, xs = np.nonzero(sel)
        rgb[ys, xs] = TEXTURES[cat](
            ys.astype(np.float32) / scale, xs.astype(np.float32) / scale, noise[ys, xs]
        )
    ys, xs = np.nonzero(void)
    rgb[ys, xs] = _void_texture(noise[ys, xs])
    return World(rgb, raw, vspw)


# ------------------------------------------------------------------------------------------
# Things: class shapes (u, v in half-heights from the centre, v down) and instance patterns
# ------------------------------------------------------------------------------------------


def _ell(u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float, rv: float) -> np.ndarray:
    return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1.0


def _rect(u: np.ndarray, v: np.ndarray, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
    return (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)


def thing_shape(category: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of class ``category`` at local coordinates (broadcast ``u`` [1, w], ``v`` [h, 1])."""
    if category == 1:  # person: head, torso, two legs
        return (
            _ell(u, v, 0, -0.74, 0.2, 0.24)
            | _ell(u, v, 0, -0.05, 0.42, 0.5)
            | _rect(u, v, -0.32, -0.06, 0.2, 1.0)
            | _rect(u, v, 0.06, 0.32, 0.2, 1.0)
        )
    if category == 3:  # car: body, cabin, wheels
        return (
            _rect(u, v, -1.85, 1.85, -0.15, 0.55)
            | (_ell(u, v, 0.1, -0.15, 1.05, 0.8) & (v <= -0.1))
            | _ell(u, v, -1.1, 0.62, 0.36, 0.36)
            | _ell(u, v, 1.1, 0.62, 0.36, 0.36)
        )
    if category == 5:  # dog: body, head, legs, tail
        return (
            _ell(u, v, -0.15, 0.0, 0.95, 0.45)
            | _ell(u, v, 0.95, -0.45, 0.38, 0.35)
            | _rect(u, v, -0.85, -0.55, 0.2, 1.0)
            | _rect(u, v, 0.3, 0.6, 0.2, 1.0)
            | _rect(u, v, -1.4, -0.9, -0.4, -0.2)
        )
    if category == 7:  # bird: V-shaped wings and a body
        wing = (np.abs(v - (0.25 - 0.75 * np.abs(u))) < 0.28) & (np.abs(u) < 1.55)
        return wing | _ell(u, v, 0, 0.2, 0.45, 0.35)
    if category == 9:  # ball
        return _ell(u, v, 0, 0, 0.95, 0.95)
    if category == 11:  # bicycle: two wheels, frame, seat post, handlebar
        return (
            _ell(u, v, -0.95, 0.4, 0.55, 0.55)
            | _ell(u, v, 0.95, 0.4, 0.55, 0.55)
            | _rect(u, v, -0.95, 0.95, -0.15, 0.12)
            | _rect(u, v, -0.55, -0.3, -0.65, 0.0)
            | _rect(u, v, 0.6, 0.85, -0.8, 0.0)
        )
    if category == 13:  # boat: hull and a sail
        hull = (v >= 0.2) & (v <= 0.9) & (np.abs(u) <= 1.5 - (v - 0.2) * 0.9)
        sail = (u >= 0.0) & (v >= -1.0) & (v <= 0.15) & (u <= (v + 1.0) * 0.75)
        return hull | sail
    if category == 15:  # cat: body, head, two ears
        ears = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
        for cu in (-0.28, 0.28):
            ears |= (v <= -0.62) & (v >= -1.0 + np.abs(u - cu) / 0.15 * 0.38)
        return _ell(u, v, 0, 0.35, 0.62, 0.62) | _ell(u, v, 0, -0.42, 0.42, 0.36) | ears
    raise ValueError(f"category {category} is not a thing")


def _pattern(thing: Thing, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    a = thing.appearance
    f = a.frequency
    if a.pattern == "stripes":
        return np.sin(2 * np.pi * f * (u * np.cos(a.angle) + v * np.sin(a.angle))) > 0
    if a.pattern == "checker":
        return np.mod(np.floor(u * f * 1.5) + np.floor(v * f * 1.5), 2) == 0
    if a.pattern == "dots":
        fu, fv = np.mod(u * f * 1.5, 1.0) - 0.5, np.mod(v * f * 1.5, 1.0) - 0.5
        return fu * fu + fv * fv < 0.09
    if a.pattern == "rings":
        return np.sin(2 * np.pi * f * 1.2 * np.sqrt(u * u + v * v)) > 0
    return np.broadcast_to(v > 0.35, np.broadcast_shapes(u.shape, v.shape))


def paint_thing(thing: Thing, t: int, rgb: np.ndarray, raw: np.ndarray, vspw: np.ndarray) -> None:
    """Paint ``thing`` at frame ``t`` over ``rgb`` [H, W, 3], ``raw`` and ``vspw`` [H, W] in place."""
    h, w = raw.shape
    half = 0.5 * float(thing.height[t])
    if half < 0.5:
        return
    cx, cy = float(thing.cx[t]), float(thing.cy[t])
    aspect = THING_ASPECT[thing.category]
    border = max(1, round(0.08 * half))
    # Visible box, padded by the border so the outline is eroded with its true context.
    x0 = max(int(np.floor(cx - aspect * half)), 0)
    x1 = min(int(np.ceil(cx + aspect * half)) + 1, w)
    y0 = max(int(np.floor(cy - half)), 0)
    y1 = min(int(np.ceil(cy + half)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return
    pad = border + 1
    xs = np.arange(x0 - pad, x1 + pad, dtype=np.float32)
    ys = np.arange(y0 - pad, y1 + pad, dtype=np.float32)
    u = ((xs + 0.5 - cx) / half)[None, :]  # [1, w]
    v = ((ys + 0.5 - cy) / half)[:, None]  # [h, 1]
    mask = thing_shape(thing.category, u, v)
    inner = ndimage.minimum_filter(mask.view(np.uint8), size=2 * border + 1, mode="constant", cval=0) > 0
    pattern = _pattern(thing, u, v)
    a = thing.appearance
    fill = np.where(
        pattern[..., None], np.asarray(a.secondary, np.float32), np.asarray(a.primary, np.float32)
    )
    colour = np.where(inner[..., None], fill, _COLOUR[thing.category])
    crop = (slice(pad, pad + y1 - y0), slice(pad, pad + x1 - x0))
    m = mask[crop]
    target = (slice(y0, y1), slice(x0, x1))
    rgb[target][m] = colour[crop][m]
    raw[target][m] = thing.raw
    vspw[target][m] = thing.category + 1


def render_video(scene: Scene, rng: np.random.Generator) -> Iterator[Frame]:
    """Render the frames of ``scene`` one at a time (the world canvas once, up front)."""
    world = render_world(scene, rng)
    h, w = scene.height, scene.width
    order = sorted(scene.things, key=lambda th: th.depth)
    sigma = scene.difficulty.noise_sigma
    for t in range(scene.frames):
        oy, ox = (int(v) for v in scene.camera[t])
        window = (slice(oy, oy + h), slice(ox, ox + w))
        rgb = world.rgb[window].copy()
        raw = world.raw[window].copy()
        vspw = world.vspw[window].copy()
        stuff_raw = raw.copy()
        for thing in order:
            paint_thing(thing, t, rgb, raw, vspw)
        rgb *= np.float32(scene.brightness[t])
        if sigma > 0:
            rgb += rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(sigma)
        image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
        yield Frame(image, raw, stuff_raw, vspw)
