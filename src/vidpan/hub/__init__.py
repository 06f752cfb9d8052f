"""Model hub: the zoo table, ``hf://`` / zoo-name / local weight specs, a verified download cache,
model cards and publishing.

Nothing here imports ``huggingface_hub`` (or torch) at import time: the downloader and converters
are imported inside the functions that need them, so ``import vidpan.hub`` stays light.
"""

from __future__ import annotations

from vidpan.hub.zoo import DEFAULT_MODEL, ZooEntry, get_entry, load_zoo

__all__ = ["DEFAULT_MODEL", "ZooEntry", "get_entry", "load_zoo"]
