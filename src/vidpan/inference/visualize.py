"""Colours and drawing for overlay videos: blended masks, outlines, class labels, legend.

Colours are deterministic functions of an integer key (a segment id for panoptic frames, so a
track keeps its colour in every frame; a class id for semantic frames unless the label space
gives dataset colours). Successive keys step the hue by the golden ratio and cycle saturation
and value, so neighbouring ids get clearly different colours. Labels are drawn with PIL's
default font at the deepest interior point of each region (:func:`regions.label_point`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vidpan.data.categories import CategoryMapping
from vidpan.data.colors import Color, id_color
from vidpan.inference.regions import boundaries, label_point, region_stats
from vidpan.structures import PanopticFrame, SemanticFrame


def text_color(background: Color) -> Color:
    """Black or white, whichever reads better on ``background`` (Rec. 601 luma)."""
    luma = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)


@lru_cache(maxsize=16)
def default_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """PIL's default font at ``size`` px (Pillow >= 10.1 scales it; older Pillow has one size)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def blend_regions(
    image: np.ndarray,
    compact: np.ndarray,
    colors: np.ndarray,
    *,
    alpha: float = 0.5,
    outline: Color | None = (255, 255, 255),
) -> np.ndarray:
    """Blend region colours into an image.

    Args:
        image: [H, W, 3] uint8 RGB.
        compact: [H, W] int32, 0 = void (left as is), k + 1 = region k.
        colors: [S + 1, 3] uint8, row k + 1 = colour of region k (row 0 unused).
        alpha: colour weight in the blend.
        outline: colour of region boundaries, or None for no outlines.

    Returns: [H, W, 3] uint8.
    """
    weight = round(alpha * 256)
    painted = colors[compact].astype(np.uint16)  # [H, W] -> [H, W, 3]
    mixed = ((image.astype(np.uint16) * (256 - weight) + painted * weight) >> 8).astype(np.uint8)
    out = np.where((compact > 0)[..., None], mixed, image)
    if outline is not None:
        out[boundaries(compact)] = outline
    return out


def draw_labels(
    image: np.ndarray,
    labels: Sequence[tuple[str, tuple[int, int], Color]],
    *,
    font_size: int,
    legend: Sequence[tuple[str, Color]] = (),
) -> np.ndarray:
    """Draw text labels centred at (x, y) on boxes of their region colour, and an optional
    legend (colour swatch + text per entry) in the top-left corner. Returns a new array."""
    if not labels and not legend:
        return image
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    font = default_font(font_size)
    height, width = image.shape[:2]
    pad = max(1, font_size // 5)
    for text, (x, y), color in labels:
        left, top, right, bottom = (round(v) for v in draw.textbbox((0, 0), text, font=font))
        tw, th = right - left, bottom - top
        # Keep the box inside the frame.
        x0 = min(max(0, x - tw // 2 - pad), max(0, width - tw - 2 * pad))
        y0 = min(max(0, y - th // 2 - pad), max(0, height - th - 2 * pad))
        draw.rectangle((x0, y0, x0 + tw + 2 * pad, y0 + th + 2 * pad), fill=color)
        draw.text((x0 + pad - left, y0 + pad - top), text, font=font, fill=text_color(color))
    y = pad
    for text, color in legend:
        left, top, right, bottom = (round(v) for v in draw.textbbox((0, 0), text, font=font))
        th = bottom - top
        draw.rectangle((pad, y, pad + th, y + th), fill=color, outline=(255, 255, 255))
        box = (2 * pad + th, y, 3 * pad + th + right - left + pad, y + th)
        draw.rectangle(box, fill=(0, 0, 0))
        draw.text((box[0] + pad - left, y - top), text, font=font, fill=(255, 255, 255))
        y += th + pad
    return np.asarray(pil)


def draw_panoptic(
    image: np.ndarray | None,
    frame: PanopticFrame,
    *,
    labels: CategoryMapping | None = None,
    alpha: float = 0.5,
    outlines: bool = True,
    text: bool = True,
    legend: bool = False,
    min_label_area: int = 64,
) -> np.ndarray:
    """Overlay a panoptic frame: one colour per segment id (stable across frames), outlines,
    class names at each segment. ``image`` None draws on black at full opacity."""
    segments = {s.id: s for s in frame.segments}
    stats = region_stats(frame.segment_ids)
    colors = np.zeros((len(stats.ids) + 1, 3), np.uint8)
    entries: list[tuple[str, tuple[int, int], Color]] = []
    legend_entries: list[tuple[str, Color]] = []
    for k, seg_id in enumerate(stats.ids.tolist()):
        color = id_color(seg_id)
        colors[k + 1] = color
        seg = segments.get(seg_id)
        name = _class_name(labels, seg.category_id) if seg is not None else f"id {seg_id}"
        if text and stats.areas[k] >= min_label_area:
            entries.append((name, label_point(stats.compact, k, stats.bboxes[k]), color))
        if legend:
            legend_entries.append((f"{seg_id}: {name}", color))
    return _render(image, stats.compact, colors, entries, legend_entries, alpha, outlines)


def draw_semantic(
    image: np.ndarray | None,
    frame: SemanticFrame,
    *,
    labels: CategoryMapping | None = None,
    alpha: float = 0.5,
    outlines: bool = True,
    text: bool = True,
    legend: bool = False,
    min_label_area: int = 64,
) -> np.ndarray:
    """Overlay a semantic frame: one colour per class (the label space's category colour, else
    :func:`id_color`), outlines and class names. Negative class ids are void."""
    classes = frame.classes.astype(np.int64)
    stats = region_stats(np.where(classes < 0, 0, classes + 1))  # shift so class 0 is not void
    colors = np.zeros((len(stats.ids) + 1, 3), np.uint8)
    entries: list[tuple[str, tuple[int, int], Color]] = []
    legend_entries: list[tuple[str, Color]] = []
    for k, shifted in enumerate(stats.ids.tolist()):
        cls = shifted - 1
        color = _class_color(labels, cls)
        colors[k + 1] = color
        name = _class_name(labels, cls)
        # A class may form several blobs: one label at the deepest point of the class region.
        if text and stats.areas[k] >= min_label_area:
            entries.append((name, label_point(stats.compact, k, stats.bboxes[k]), color))
        if legend:
            legend_entries.append((name, color))
    return _render(image, stats.compact, colors, entries, legend_entries, alpha, outlines)


def _render(
    image: np.ndarray | None,
    compact: np.ndarray,
    colors: np.ndarray,
    entries: list[tuple[str, tuple[int, int], Color]],
    legend_entries: list[tuple[str, Color]],
    alpha: float,
    outlines: bool,
) -> np.ndarray:
    if image is None:
        image, alpha = np.zeros((*compact.shape, 3), np.uint8), 1.0
    elif image.shape != (*compact.shape, 3) or image.dtype != np.uint8:
        raise ValueError(f"image {image.dtype} {image.shape} does not match the result size {compact.shape}")
    out = blend_regions(image, compact, colors, alpha=alpha, outline=(255, 255, 255) if outlines else None)
    font_size = max(10, compact.shape[0] // 45)
    return draw_labels(out, entries, font_size=font_size, legend=legend_entries)


def _class_name(labels: CategoryMapping | None, model_class: int) -> str:
    if labels is None or not 0 <= model_class < labels.num_classes:
        return f"class {model_class}"
    return labels.name(model_class)


def _class_color(labels: CategoryMapping | None, model_class: int) -> Color:
    if labels is None or not 0 <= model_class < labels.num_classes:
        return id_color(model_class, salt=1)
    c = labels.category(model_class).color
    return int(c[0]), int(c[1]), int(c[2])
