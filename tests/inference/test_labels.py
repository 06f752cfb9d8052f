"""Label spaces: model class -> dataset category."""

from __future__ import annotations

import pytest

from vidpan.data.formats.vipseg import Category
from vidpan.inference.labels import LabelSpace

CATS = [
    Category(0, "wall", False, (1, 1, 1)),
    Category(1, "door", True, (2, 2, 2)),
    Category(2, "sky", False, (3, 3, 3)),
    Category(3, "person", True, (4, 4, 4)),
]


def test_things_first_is_the_dvis_vps_order() -> None:
    labels = LabelSpace.things_first(list(reversed(CATS)))
    assert [labels.dataset_id(k) for k in range(4)] == [1, 3, 0, 2]
    assert labels.name(1) == "person" and labels.category(2).isthing is False
    with pytest.raises(ValueError, match="outside the label space"):
        labels.category(4)


def test_identity_and_from_names() -> None:
    assert [c.id for c in LabelSpace.identity(list(reversed(CATS))).categories] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"ids 0\.\.K-1"):
        LabelSpace.identity(CATS[1:])
    named = LabelSpace.from_names(["a", "b", "c"], num_things=1)
    assert [(c.id, c.name, c.isthing) for c in named.categories] == [
        (0, "a", True),
        (1, "b", False),
        (2, "c", False),
    ]
    assert len({c.color for c in named.categories}) == 3
    with pytest.raises(ValueError, match="twice"):
        LabelSpace((CATS[0], CATS[0]))
