"""Checkpoint files: atomic writes (a crash mid-write leaves the last good checkpoint), pruning,
RNG round trips, and the rules for loading a previous stage's weights."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from vidpan.config import Config, load_config
from vidpan.errors import InputError
from vidpan.models.build import Part, build_dvis
from vidpan.models.checkpoint import save_native
from vidpan.training import checkpoints as C


def _payload(iteration: int) -> dict[str, object]:
    return {"iteration": iteration, "model": {"w": torch.full((3,), float(iteration))}}


def test_save_points_last_and_keeps_the_newest(tmp_path: Path) -> None:
    for it in (10, 20, 30, 40):
        C.save_checkpoint(tmp_path, it, _payload(it), keep=2)
    assert [p.name for p in C.list_checkpoints(tmp_path)] == ["iter_0000030.pt", "iter_0000040.pt"]
    assert (tmp_path / "checkpoints" / "last").read_text().strip() == "iter_0000040.pt"
    assert C.load_checkpoint(C.latest_checkpoint(tmp_path))["iteration"] == 40  # type: ignore[arg-type]


def test_crash_while_writing_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    C.save_checkpoint(tmp_path, 100, _payload(100), keep=1)
    real_save = torch.save

    def crashing_save(obj: object, f: object) -> None:
        real_save(obj, f)  # the bytes are (partly) on disk ...
        f.write(b"garbage")  # type: ignore[attr-defined]
        raise OSError("disk full")  # ... and the process dies before the rename

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        C.save_checkpoint(tmp_path, 200, _payload(200), keep=1)
    monkeypatch.undo()
    latest = C.latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "iter_0000100.pt"
    assert torch.equal(C.load_checkpoint(latest)["model"]["w"], torch.full((3,), 100.0))
    assert [p.name for p in C.list_checkpoints(tmp_path)] == ["iter_0000100.pt"]
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))  # the partial file is gone


def test_killed_process_leftovers_are_ignored_and_removed(tmp_path: Path) -> None:
    C.save_checkpoint(tmp_path, 5, _payload(5), keep=3)
    directory = tmp_path / "checkpoints"
    (directory / ".iter_0000010.pt.abc.tmp").write_bytes(b"half a checkpoint")  # SIGKILL mid-write
    (directory / "last").write_text("iter_0000010.pt\n")  # even a pointer to a missing file
    latest = C.latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "iter_0000005.pt"
    C.remove_partial_files(tmp_path)
    assert not list(directory.glob(".*.tmp"))


def test_unreadable_checkpoint_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "iter_0000001.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read training checkpoint"):
        C.load_checkpoint(path)


def test_rng_round_trip() -> None:
    gens = {"loss": torch.Generator().manual_seed(1), "noise": torch.Generator().manual_seed(2)}
    state = C.capture_rng(gens)
    first = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=gens["loss"]))  # noqa: NPY002
    # the state must survive a weights-only save / load
    path_state = _roundtrip(state)
    C.restore_rng(path_state, gens)
    second = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=gens["loss"]))  # noqa: NPY002
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])


def _roundtrip(obj: object) -> dict[str, object]:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # type: ignore[no-any-return]


# ------------------------------------------------------------------ init weights


@pytest.fixture(scope="module")
def tiny_cfg() -> Config:
    return load_config("tiny")


def _export(tmp_path: Path, cfg: Config, parts: tuple[Part, ...], name: str, drop: str | None = None) -> Path:
    torch.manual_seed(7)
    model = build_dvis(cfg.model, parts=parts)
    state = {k: v for k, v in model.state_dict().items() if drop is None or not k.startswith(drop)}
    path = tmp_path / name
    save_native(path, state, cfg)
    return path


def test_init_partial_load_of_a_part_the_file_lacks(tmp_path: Path, tiny_cfg: Config) -> None:
    path = _export(tmp_path, tiny_cfg, ("segmenter",), "seg.safetensors")
    torch.manual_seed(99)
    model = build_dvis(tiny_cfg.model, parts=("segmenter", "tracker"))
    tracker_before = {k: v.clone() for k, v in model.tracker.state_dict().items()}
    report = C.load_init_weights(model, path, frozen_components=["segmenter", "segmenter.backbone.vit"])
    assert report.random == ["tracker"]
    assert set(report.loaded) == {"segmenter", "segmenter.backbone.vit"}
    assert any("starts from scratch: tracker" in line for line in report.lines())
    from vidpan.models.checkpoint import load_native

    _, state = load_native(path)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert all(torch.equal(model.tracker.state_dict()[k], v) for k, v in tracker_before.items())


def test_init_must_provide_frozen_parts(tmp_path: Path, tiny_cfg: Config) -> None:
    path = _export(tmp_path, tiny_cfg, ("segmenter",), "seg.safetensors")
    model = build_dvis(tiny_cfg.model, parts=("segmenter", "tracker", "refiner"))
    with pytest.raises(InputError, match="tracker is frozen in this stage but the file has no weights"):
        C.load_init_weights(model, path, frozen_components=["segmenter", "tracker"])


def test_init_half_present_part_is_an_error(tmp_path: Path, tiny_cfg: Config) -> None:
    path = _export(tmp_path, tiny_cfg, ("segmenter",), "partial.safetensors", drop="segmenter.decoder.")
    model = build_dvis(tiny_cfg.model, parts=("segmenter",))
    with pytest.raises(InputError, match=r"segmenter: \d+ missing keys"):
        C.load_init_weights(model, path, frozen_components=[])


def test_init_vit_only_file_starts_the_rest_from_scratch(tmp_path: Path, tiny_cfg: Config) -> None:
    torch.manual_seed(3)
    model = build_dvis(tiny_cfg.model, parts=("segmenter",))
    vit = {k: v for k, v in model.state_dict().items() if k.startswith("segmenter.backbone.vit.")}
    path = tmp_path / "vit.safetensors"
    save_native(path, vit, tiny_cfg)  # what `vidpan convert --format dinov2` writes
    report = C.load_init_weights(
        build_dvis(tiny_cfg.model, parts=("segmenter",)), path, frozen_components=["segmenter.backbone.vit"]
    )
    assert report.random == ["segmenter"] and set(report.loaded) == {"segmenter.backbone.vit"}


def test_init_class_space_change_needs_reset(tmp_path: Path, tiny_cfg: Config) -> None:
    import dataclasses

    coco = dataclasses.replace(
        tiny_cfg, model=dataclasses.replace(tiny_cfg.model, num_classes=133, num_things=80)
    )
    path = _export(tmp_path, coco, ("segmenter",), "coco.safetensors")
    model = build_dvis(tiny_cfg.model, parts=("segmenter", "tracker"))
    with pytest.raises(InputError, match=r"segmenter\.decoder\.class_embed\.weight: shape"):
        C.load_init_weights(model, path, frozen_components=[])
    report = C.load_init_weights(model, path, frozen_components=[], reset=["segmenter.decoder.class_embed."])
    assert report.reset == ["segmenter.decoder.class_embed.bias", "segmenter.decoder.class_embed.weight"]
    with pytest.raises(InputError, match="matches no parameter"):
        C.load_init_weights(model, path, frozen_components=[], reset=["segmenter.decoder.clas_embed."])


def test_init_ignores_parts_the_stage_does_not_build(tmp_path: Path, tiny_cfg: Config) -> None:
    path = _export(tmp_path, tiny_cfg, ("segmenter", "tracker", "refiner"), "full.safetensors")
    report = C.load_init_weights(build_dvis(tiny_cfg.model, parts=("segmenter",)), path, frozen_components=[])
    assert set(report.unused) == {"tracker", "refiner"}
