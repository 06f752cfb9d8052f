"""The config system: frozen dataclasses, YAML round trip, overrides, errors with key paths."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from vidpan.config import (
    Config,
    apply_overrides,
    from_dict,
    load_config,
    load_yaml,
    preset_names,
    save_yaml,
    to_dict,
)
from vidpan.errors import InputError


def test_presets_load_and_round_trip(tmp_path: Path) -> None:
    assert {"tiny", "vits", "vitb", "vitl", "vitg"} <= set(preset_names())
    for name in preset_names():
        cfg = load_config(name)
        save_yaml(cfg, tmp_path / f"{name}.yaml")
        assert load_yaml(Config, tmp_path / f"{name}.yaml") == cfg
    vitg = load_config("vitg").model
    assert (vitg.vit.embed_dim, vitg.vit.depth, vitg.vit.num_heads, vitg.vit.ffn) == (1536, 40, 24, "swiglu")
    assert vitg.adapter.interaction_indexes == ((0, 9), (10, 19), (20, 29), (30, 39))
    assert (vitg.adapter.deform_num_heads, vitg.decoder.num_queries, vitg.num_classes) == (24, 200, 124)
    vitl = load_config("vitl").model
    assert (vitl.vit.patch_size, vitl.vit.img_size, vitl.adapter.value_ratio) == (16, 592, 1.0)


def test_configs_are_frozen() -> None:
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.name = "x"  # type: ignore[misc]


def test_overrides_parse_yaml_values_and_revalidate() -> None:
    cfg = apply_overrides(
        Config(),
        ["model.decoder.num_queries=100", "model.adapter.interaction_indexes=[[0,1],[2,3]]", "inference.mode=online",
         "model.pixel_mean=[1, 2, 3]", "model.vit.frozen=false"],
    )  # fmt: skip
    assert cfg.model.decoder.num_queries == 100
    assert cfg.model.adapter.interaction_indexes == ((0, 1), (2, 3))
    assert cfg.inference.mode == "online" and cfg.model.pixel_mean == (1.0, 2.0, 3.0)
    assert cfg.model.vit.frozen is False


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.decoder.num_queriess=3", "model.decoder.num_queriess: unknown key"),
        ("model.decoderr.num_queries=3", "model.decoderr: unknown key"),
        ("model.decoder.num_queries=abc", "model.decoder.num_queries: expected an integer"),
        ("model.vit.frozen=maybe", "model.vit.frozen: expected true/false"),
        ("inference.mode=sideways", "inference.mode: expected one of"),
        ("model.pixel_mean=[1, 2]", "model.pixel_mean: expected 3 items"),
        ("no_equals_sign", "expected key=value"),
    ],
)
def test_bad_overrides_name_the_key(override: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("[", r"\[")):
        apply_overrides(Config(), [override])


def test_yaml_unknown_key_names_file_and_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  decoder:\n    hidden_dimm: 3\n")
    with pytest.raises(InputError) as info:
        load_yaml(Config, bad)
    assert str(bad) in str(info.value) and "model.decoder.hidden_dimm: unknown key" in str(info.value)
    (tmp_path / "notyaml.yaml").write_text("model: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_yaml(Config, tmp_path / "notyaml.yaml")
    with pytest.raises(InputError, match="unknown preset"):
        load_config("vitz")


def test_base_chain(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text("base: tiny\nname: child\nmodel: {decoder: {num_queries: 7}}\n")
    cfg = load_yaml(Config, tmp_path / "child.yaml")
    tiny = load_config("tiny")
    assert cfg.name == "child" and cfg.model.decoder.num_queries == 7
    assert cfg.model.vit == tiny.model.vit  # everything else from the base
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(InputError, match="circular"):
        load_yaml(Config, tmp_path / "a.yaml")


def test_dict_round_trip() -> None:
    cfg = load_config("vitg")
    assert from_dict(Config, to_dict(cfg)) == cfg
