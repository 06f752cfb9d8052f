"""The label space of a model: model class id -> dataset category (id, name, isthing, colour).

Models predict classes in their own order; the writers need dataset category ids (submissions,
VSPW PNGs), names (overlay, JSON) and colours. DVIS++ trains VIPSeg VPS models with things first:
model classes 0..57 are the 58 thing categories in ascending dataset id, 58..123 the stuff
categories (``reference/dvis_reference.md`` §4.4); its VSS models keep the dataset order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vidpan.data.formats.vipseg import Category


@dataclass(frozen=True)
class LabelSpace:
    """``categories[k]`` is the dataset category that model class ``k`` stands for."""

    categories: tuple[Category, ...]

    def __post_init__(self) -> None:
        ids = [c.id for c in self.categories]
        if not ids:
            raise ValueError("a label space needs at least one category")
        if len(set(ids)) != len(ids):
            raise ValueError("a dataset category appears twice in the label space")

    @classmethod
    def identity(cls, categories: Sequence[Category]) -> LabelSpace:
        """Model class k = dataset category k (ids must be 0..K-1), e.g. VSPW semantic models."""
        ordered = sorted(categories, key=lambda c: c.id)
        if [c.id for c in ordered] != list(range(len(ordered))):
            raise ValueError("identity label space needs dataset ids 0..K-1")
        return cls(tuple(ordered))

    @classmethod
    def things_first(cls, categories: Sequence[Category]) -> LabelSpace:
        """DVIS++ VPS order: things by ascending dataset id, then stuff by ascending id."""
        ordered = sorted(categories, key=lambda c: (not c.isthing, c.id))
        return cls(tuple(ordered))

    @classmethod
    def from_names(cls, names: Sequence[str], *, num_things: int = 0) -> LabelSpace:
        """A label space without a dataset: ids 0..K-1, the first ``num_things`` are things,
        colours from :func:`vidpan.inference.visualize.id_color`."""
        from vidpan.inference.visualize import id_color

        return cls(
            tuple(Category(k, str(name), k < num_things, id_color(k, salt=1)) for k, name in enumerate(names))
        )

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    def category(self, model_class: int) -> Category:
        """The dataset category of a model class (ValueError if out of range)."""
        if not 0 <= model_class < len(self.categories):
            raise ValueError(
                f"model class {model_class} is outside the label space (0..{len(self.categories) - 1})"
            )
        return self.categories[model_class]

    def dataset_id(self, model_class: int) -> int:
        return self.category(model_class).id

    def name(self, model_class: int) -> str:
        return self.category(model_class).name
