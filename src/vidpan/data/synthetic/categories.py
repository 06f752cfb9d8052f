"""The synthetic benchmark's categories and per-class geometry.

16 categories with our own names and colours, 0-based like VIPSeg's ``panoVIPSeg_categories.json``,
stuff (even ids) and things (odd ids) interleaved so the things-first remapping of a model's class
space is exercised. Thing ids start at 1 because the raw panomask code ``(c + 1) * 100 + k`` must
be >= 125 (the official decoder reads smaller values as stuff).
"""

from __future__ import annotations

from vidpan.data.formats.vipseg import Category

# Thing colours are the outline colours painted around every instance of the class (the class
# cue); stuff colours are close to the mean colour of the class texture.
CATEGORIES: tuple[Category, ...] = (
    Category(0, "sky", False, (150, 195, 235)),
    Category(1, "person", True, (220, 40, 40)),
    Category(2, "water", False, (35, 90, 170)),
    Category(3, "car", True, (250, 210, 30)),
    Category(4, "grass", False, (80, 160, 60)),
    Category(5, "dog", True, (150, 90, 40)),
    Category(6, "road", False, (90, 90, 95)),
    Category(7, "bird", True, (255, 120, 210)),
    Category(8, "wall", False, (170, 80, 60)),
    Category(9, "ball", True, (245, 245, 245)),
    Category(10, "sand", False, (215, 195, 140)),
    Category(11, "bicycle", True, (40, 230, 230)),
    Category(12, "forest", False, (35, 95, 40)),
    Category(13, "boat", True, (255, 130, 20)),
    Category(14, "floor", False, (150, 110, 70)),
    Category(15, "cat", True, (140, 50, 210)),
)
STUFF_IDS: tuple[int, ...] = tuple(c.id for c in CATEGORIES if not c.isthing)
THING_IDS: tuple[int, ...] = tuple(c.id for c in CATEGORIES if c.isthing)
CATEGORY_NAMES: dict[int, str] = {c.id: c.name for c in CATEGORIES}

# Where a stuff class tends to sit in a band layout (0 top .. 1 bottom): sky above forest above
# the ground classes, so scenes look plausible and the layout itself is a (weak) cue.
STUFF_HEIGHT: dict[int, float] = {0: 0.0, 12: 0.3, 8: 0.35, 2: 0.6, 4: 0.7, 10: 0.75, 6: 0.8, 14: 0.9}

# Thing geometry: width / height of the bounding box, size relative to a person, and the vertical
# range of the centre as a fraction of the frame height.
THING_ASPECT: dict[int, float] = {1: 0.45, 3: 1.9, 5: 1.4, 7: 1.6, 9: 1.0, 11: 1.6, 13: 1.5, 15: 0.8}
THING_SIZE: dict[int, float] = {1: 1.0, 3: 0.75, 5: 0.7, 7: 0.55, 9: 0.55, 11: 0.75, 13: 0.8, 15: 0.65}
THING_Y: dict[int, tuple[float, float]] = {
    1: (0.5, 0.75),
    3: (0.55, 0.8),
    5: (0.6, 0.8),
    7: (0.15, 0.45),
    9: (0.45, 0.8),
    11: (0.55, 0.8),
    13: (0.45, 0.75),
    15: (0.55, 0.8),
}
PATTERNS: tuple[str, ...] = ("stripes", "checker", "dots", "rings", "solid")
