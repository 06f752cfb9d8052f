"""Config values are range-checked where they are parsed: one InputError naming key and range.

(Training sections are checked by ``vidpan.training.config.validate_train_config``.)
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidpan.config import Config, InferenceConfig, apply_overrides
from vidpan.errors import InputError

BAD = [
    ("inference.window_size=0", "inference.window_size: expected an integer >= 1, got 0"),
    ("inference.short_side=-5", "inference.short_side: expected an integer >= 0"),
    ("inference.max_size=0", "inference.max_size: expected an integer >= 1, got 0"),
    ("inference.segmenter_batch=-1", "inference.segmenter_batch: expected an integer >= 0"),
    ("inference.object_mask_threshold=2", "inference.object_mask_threshold: expected a number in [0.0, 1.0], got 2.0"),
    ("inference.overlap_threshold=.nan", "inference.overlap_threshold: expected a number in [0.0, 1.0], got nan"),
    ("inference.max_instances=0", "inference.max_instances: expected an integer >= 1, got 0"),
    ("inference.chunk_length=0", "inference.chunk_length: expected an integer >= 1"),
    ("inference.chunk_overlap=30", "inference.chunk_overlap: expected an integer >= 0 and < 21"),
    ("inference.max_input_pixels=-1", "inference.max_input_pixels: expected an integer >= 0"),
    ("model.decoder.num_queries=0", "model.decoder.num_queries: expected an integer >= 1"),
    ("model.num_things=500", "model.num_things: expected an integer in [0, 124] (at most num_classes)"),
    ("model.pixel_std=[1, 0, 1]", "model.pixel_std: expected 3 numbers > 0"),
    ("model.refiner.mask_window=0", "model.refiner.mask_window: expected an integer >= 1"),
]  # fmt: skip


@pytest.mark.parametrize(("override", "message"), BAD)
def test_out_of_range_values_name_the_key_and_range(override: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        apply_overrides(Config(), [override])
    assert str(info.value) == message or str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_documented_zero_values_stay_valid() -> None:
    cfg = apply_overrides(Config(), ["inference.segmenter_batch=0", "inference.short_side=0"])
    assert (cfg.inference.segmenter_batch, cfg.inference.short_side) == (0, 0)


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(InputError, match="window_size"):
        InferenceConfig(window_size=0)


@settings(max_examples=60, deadline=None)
@given(
    field=st.sampled_from(["window_size", "max_size", "max_instances", "chunk_length"]),
    value=st.integers(min_value=-(10**6), max_value=10**6),
)
def test_integer_minimums(field: str, value: int) -> None:
    overrides = [f"inference.{field}={value}"]
    if field == "chunk_length":
        overrides.append("inference.chunk_overlap=0")
    if value >= 1:
        assert getattr(apply_overrides(Config(), overrides).inference, field) == value
    else:
        with pytest.raises(InputError, match=f"inference.{field}: expected an integer >= 1"):
            apply_overrides(Config(), overrides)


@settings(max_examples=60, deadline=None)
@given(value=st.floats(allow_nan=True, allow_infinity=True, width=32))
def test_thresholds_are_probabilities(value: float) -> None:
    text = (
        repr(value)
        if math.isfinite(value)
        else (".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf"))
    )
    override = [f"inference.object_mask_threshold={text}"]
    if math.isfinite(value) and 0.0 <= value <= 1.0:
        assert apply_overrides(Config(), override).inference.object_mask_threshold == pytest.approx(value)
    else:
        with pytest.raises(InputError, match="object_mask_threshold: expected a number in"):
            apply_overrides(Config(), override)
