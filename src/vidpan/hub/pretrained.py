"""One line from a name to a running model: ``VideoPredictor.from_pretrained("dvis++/vipseg-vitl-offline")``.

Also the default-weights rule of ``vidpan segment``: without ``--weights`` it runs the shipped
synthetic demo model and says so in one line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidpan.hub.zoo import DEFAULT_MODEL

if TYPE_CHECKING:
    from vidpan.inference.predictor import VideoPredictor

DEFAULT_NOTICE = (
    f"note: no --weights given, using {DEFAULT_MODEL!r}, a synthetic demo model (16 made-up classes, not "
    "for real videos); for a real one: --weights dvis++/vipseg-vitl-offline (see `vidpan models`)"
)


def default_weights(*, quiet: bool = False) -> str:
    """The zoo name ``vidpan segment`` uses without ``--weights``; prints the one-line notice to stderr."""
    if not quiet:
        print(DEFAULT_NOTICE, file=sys.stderr)
    return DEFAULT_MODEL


def from_pretrained(
    name_or_path: str | Path = DEFAULT_MODEL,
    *,
    preset: str | None = None,
    overrides: Sequence[str] = (),
    **predictor_kwargs: Any,
) -> VideoPredictor:
    """A :class:`~vidpan.inference.predictor.VideoPredictor` for a zoo name, ``hf://`` spec or local file.

    Remote weights are downloaded, verified and converted once (:func:`vidpan.hub.resolve.resolve_weights`).
    ``predictor_kwargs`` go to ``VideoPredictor`` (``device``, ``precision``, ``categories``, …).
    """
    from vidpan.inference.predictor import VideoPredictor
    from vidpan.models.convert import load_for_inference

    config, model = load_for_inference(name_or_path, preset=preset, overrides=overrides)
    return VideoPredictor(model, config, **predictor_kwargs)
