"""Deterministic display colours for integer keys (class ids, track ids).

Lives in ``data`` (not ``inference.visualize``) because category mappings without a dataset
palette need it too (:meth:`vidpan.data.categories.CategoryMapping.from_names`): ``data`` must
not import ``inference``. Pure Python, no NumPy / PIL.
"""

from __future__ import annotations

import colorsys

Color = tuple[int, int, int]

_GOLDEN = 0.6180339887498949
_SATURATIONS = (0.9, 0.65, 0.8)
_VALUES = (0.95, 0.75)


def id_color(key: int, *, salt: int = 0) -> Color:
    """A bright, deterministic colour for an integer key (``salt`` gives an independent palette)."""
    k = abs(int(key)) + 7919 * salt
    hue = (0.13 + k * _GOLDEN) % 1.0
    sat = _SATURATIONS[k % len(_SATURATIONS)]
    val = _VALUES[(k // len(_SATURATIONS)) % len(_VALUES)]
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return round(r * 255), round(g * 255), round(b * 255)
