"""Dataset category ids <-> the model's class space (things first, then stuff).

Follows ``reference/dvis_reference.md`` §4.4: DVIS++ relabels VIPSeg's interleaved 0-based ids so
that the things, sorted by dataset id, become classes ``0 .. num_things-1`` and the stuff, sorted by
dataset id, become ``num_things .. num_classes-1`` (``dataset_mapper_vps.py``; the VSS metadata in
``datasets/vss.py`` orders the same list things first too). Inference maps back with
:meth:`CategoryMapping.to_dataset` and decides ``isthing = label < num_things``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vidpan.data.colors import id_color
from vidpan.errors import InputError

if TYPE_CHECKING:  # kept out of import time: this module is imported by the light CLI
    import numpy as np
    import torch

    from vidpan.config import ModelConfig
    from vidpan.data.formats.vipseg import Category


@dataclass(frozen=True)
class CategoryMapping:
    """The model class space of a dataset.

    ``dataset_ids[label]`` is the dataset category id of model class ``label``; classes
    ``0 .. num_things-1`` are things. ``names`` and ``colors`` follow the model order.
    """

    dataset_ids: tuple[int, ...]
    names: tuple[str, ...]
    num_things: int
    colors: tuple[tuple[int, int, int], ...] = ()

    def __post_init__(self) -> None:
        if len(set(self.dataset_ids)) != len(self.dataset_ids):
            raise InputError("category mapping: duplicate dataset category ids")
        if len(self.names) != len(self.dataset_ids):
            raise InputError("category mapping: one name per category expected")
        if self.colors and len(self.colors) != len(self.dataset_ids):
            raise InputError("category mapping: one colour per category expected")
        if not 0 <= self.num_things <= len(self.dataset_ids):
            raise InputError(f"category mapping: num_things {self.num_things} out of range")
        if any(i < 0 for i in self.dataset_ids):
            raise InputError("category mapping: dataset category ids must be >= 0")

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_categories(cls, categories: Sequence[Category]) -> CategoryMapping:
        """Things sorted by id, then stuff sorted by id (DVIS++ ``thing/stuff_ids_to_continue_dic``)."""
        if not categories:
            raise InputError("category mapping: empty category list")
        things = sorted((c for c in categories if c.isthing), key=lambda c: c.id)
        stuff = sorted((c for c in categories if not c.isthing), key=lambda c: c.id)
        ordered = things + stuff
        return cls(
            dataset_ids=tuple(c.id for c in ordered),
            names=tuple(c.name for c in ordered),
            num_things=len(things),
            colors=tuple(c.color for c in ordered),
        )

    @classmethod
    def identity(cls, categories: Sequence[Category]) -> CategoryMapping:
        """Model class k = dataset category k (ids must be 0..K-1), e.g. VSPW semantic models.

        ``num_things`` is the number of leading thing categories (0 if the list is interleaved).
        """
        ordered = sorted(categories, key=lambda c: c.id)
        if [c.id for c in ordered] != list(range(len(ordered))):
            raise InputError("identity category mapping needs dataset ids 0..K-1")
        num_things = 0
        while num_things < len(ordered) and ordered[num_things].isthing:
            num_things += 1
        return cls(
            dataset_ids=tuple(c.id for c in ordered),
            names=tuple(c.name for c in ordered),
            num_things=num_things,
            colors=tuple(c.color for c in ordered),
        )

    @classmethod
    def from_names(cls, names: Sequence[str], *, num_things: int) -> CategoryMapping:
        """A model without a dataset: ids 0..K-1, the first ``num_things`` are things, colours
        from :func:`vidpan.data.colors.id_color`."""
        return cls(
            dataset_ids=tuple(range(len(names))),
            names=tuple(str(n) for n in names),
            num_things=num_things,
            colors=tuple(id_color(k, salt=1) for k in range(len(names))),
        )

    @classmethod
    def from_model_config(cls, cfg: ModelConfig) -> CategoryMapping:
        """The label space stored with a model (``class_names``, ``dataset_category_ids``,
        ``class_colors``); names default to ``class_<k>`` and dataset ids to 0..K-1."""
        names = cfg.class_names or tuple(f"class_{k}" for k in range(cfg.num_classes))
        mapping = cls.from_names(names, num_things=cfg.num_things)
        return cls(
            dataset_ids=cfg.dataset_category_ids or mapping.dataset_ids,
            names=mapping.names,
            num_things=cfg.num_things,
            colors=cfg.class_colors or mapping.colors,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> CategoryMapping:
        """From ``panoVIPSeg_categories.json`` or any JSON with a ``categories`` list."""
        from vidpan.data.formats.vipseg import read_categories

        return cls.from_categories(read_categories(path))

    # -- queries ----------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return len(self.dataset_ids)

    @property
    def num_stuff(self) -> int:
        return self.num_classes - self.num_things

    def isthing(self, label: int) -> bool:
        """Whether model class ``label`` is a thing (``label < num_things``)."""
        self._check_label(label)
        return label < self.num_things

    def has_dataset_id(self, dataset_id: int) -> bool:
        return dataset_id in self._index

    def to_model(self, dataset_id: int) -> int:
        """Dataset category id -> model class; an unknown id is an :class:`InputError`."""
        try:
            return self._index[int(dataset_id)]
        except KeyError:
            raise InputError(
                f"unknown category id {dataset_id} (known: {min(self.dataset_ids)}..{max(self.dataset_ids)}, "
                f"{self.num_classes} categories)"
            ) from None

    def to_dataset(self, label: int) -> int:
        """Model class -> dataset category id."""
        self._check_label(label)
        return self.dataset_ids[label]

    def category(self, label: int) -> Category:
        """The dataset category of model class ``label`` (``Category.id`` is the dataset id)."""
        from vidpan.data.formats.vipseg import Category

        self._check_label(label)
        color = self.colors[label] if self.colors else (0, 0, 0)
        return Category(self.dataset_ids[label], self.names[label], label < self.num_things, color)

    def name(self, label: int) -> str:
        self._check_label(label)
        return self.names[label]

    def categories(self) -> list[Category]:
        """The categories in model order (``Category.id`` is the dataset id)."""
        from vidpan.data.formats.vipseg import Category

        colors = self.colors or tuple((0, 0, 0) for _ in self.dataset_ids)
        return [
            Category(i, n, k < self.num_things, c)
            for k, (i, n, c) in enumerate(zip(self.dataset_ids, self.names, colors, strict=True))
        ]

    # -- vectorised lookups -------------------------------------------------------------------

    def dataset_to_model_lut(self, *, fill: int = -1) -> np.ndarray:
        """[max_dataset_id + 1] int64 lookup table dataset id -> model class (``fill`` where unknown)."""
        import numpy as np

        lut = np.full(max(self.dataset_ids) + 1, fill, dtype=np.int64)
        lut[list(self.dataset_ids)] = np.arange(self.num_classes)
        return lut

    def labels_to_dataset(self, labels: torch.Tensor) -> torch.Tensor:
        """[...] model classes -> [...] dataset ids (same shape, int64)."""
        import torch

        table = torch.tensor(self.dataset_ids, dtype=torch.int64, device=labels.device)
        return table[labels.long()]

    def labels_isthing(self, labels: torch.Tensor) -> torch.Tensor:
        """[...] model classes -> [...] bool."""
        return labels < self.num_things

    # -- internals ------------------------------------------------------------------------------

    @property
    def _index(self) -> dict[int, int]:
        cached = self.__dict__.get("_index_cache")
        if cached is None:
            cached = {d: k for k, d in enumerate(self.dataset_ids)}
            object.__setattr__(self, "_index_cache", cached)
        return cached

    def _check_label(self, label: int) -> None:
        if not 0 <= int(label) < self.num_classes:
            raise ValueError(f"model class {label} out of range 0..{self.num_classes - 1}")
