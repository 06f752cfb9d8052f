"""CategoryMapping: things first (sorted by id), then stuff; round trips; unknown ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidpan.data.categories import CategoryMapping
from vidpan.data.formats.vipseg import Category, read_categories
from vidpan.errors import InputError


def _interleaved() -> list[Category]:
    flags = [False, False, True, False, True, False, True, True, False]
    # deliberately unsorted input order
    cats = [Category(i, f"c{i}", f, (i, i, i)) for i, f in enumerate(flags)]
    return cats[::-1]


def test_things_first_order() -> None:
    m = CategoryMapping.from_categories(_interleaved())
    assert m.num_things == 4 and m.num_classes == 9 and m.num_stuff == 5
    assert m.dataset_ids == (2, 4, 6, 7, 0, 1, 3, 5, 8)
    assert m.names[0] == "c2" and m.colors[4] == (0, 0, 0)


def test_round_trip_and_isthing() -> None:
    cats = _interleaved()
    m = CategoryMapping.from_categories(cats)
    for c in cats:
        label = m.to_model(c.id)
        assert m.to_dataset(label) == c.id
        assert m.isthing(label) == c.isthing
    for label in range(m.num_classes):
        assert m.to_model(m.to_dataset(label)) == label
    labels = torch.arange(m.num_classes)
    assert m.labels_to_dataset(labels).tolist() == list(m.dataset_ids)
    assert m.labels_isthing(labels).tolist() == [k < 4 for k in range(9)]
    lut = m.dataset_to_model_lut()
    assert all(lut[d] == k for k, d in enumerate(m.dataset_ids))
    assert CategoryMapping.from_categories(m.categories()) == m


def test_unknown_ids() -> None:
    m = CategoryMapping.from_categories(_interleaved())
    with pytest.raises(InputError, match="unknown category id 42"):
        m.to_model(42)
    with pytest.raises(ValueError):
        m.to_dataset(9)
    sparse = CategoryMapping.from_categories(
        [Category(1, "a", True, (0, 0, 0)), Category(7, "b", False, (0, 0, 0))]
    )
    assert sparse.dataset_to_model_lut().tolist() == [-1, 0, -1, -1, -1, -1, -1, 1]
    with pytest.raises(InputError):
        CategoryMapping.from_categories([])


def test_vipseg_categories_of_the_oracle(shared_dir: Path) -> None:
    """The oracle's 124 VIPSeg categories: 58 things first; isthing == label < 58 as inference assumes."""
    path = shared_dir / "fixtures/metrics_oracle/seed_1/data/VIPSeg_720P/panoptic_gt_VIPSeg_val.json"
    cats = read_categories(path)
    m = CategoryMapping.from_file(path)
    assert m.num_classes == len(cats) == 124
    assert m.num_things == sum(c.isthing for c in cats) == 58
    by_id = {c.id: c for c in cats}
    for label, dataset_id in enumerate(m.dataset_ids):
        assert by_id[dataset_id].isthing == (label < m.num_things)
    things = np.array(m.dataset_ids[: m.num_things])
    assert (np.diff(things) > 0).all() and (np.diff(np.array(m.dataset_ids[m.num_things :])) > 0).all()


def test_identity_and_names_mappings() -> None:
    from vidpan.data.categories import CategoryMapping
    from vidpan.data.formats.vipseg import Category
    from vidpan.errors import InputError

    cats = [
        Category(1, "car", True, (1, 1, 1)),
        Category(0, "person", True, (2, 2, 2)),
        Category(2, "sky", False, (3, 3, 3)),
    ]
    ident = CategoryMapping.identity(cats)
    assert ident.dataset_ids == (0, 1, 2) and ident.num_things == 2
    assert ident.category(2) == Category(2, "sky", False, (3, 3, 3))
    assert ident.name(0) == "person"
    with pytest.raises(InputError):
        CategoryMapping.identity(cats[1:])
    named = CategoryMapping.from_names(["a", "b", "c"], num_things=1)
    assert named.category(0).isthing and not named.category(1).isthing
    assert len(set(named.colors)) == 3
