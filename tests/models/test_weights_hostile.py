"""Weights from strangers: damaged files say they are damaged, pickles that would run code are
refused without pointing at the unsafe path, NaN weights are refused; one line each."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import vidpan
from vidpan.errors import InputError
from vidpan.models.checkpoint import read_checkpoint
from vidpan.models.convert import load_for_inference

SHIPPED = Path(vidpan.__file__).parent / "assets" / "synthetic_tiny" / "model.safetensors"


class _RunsCode:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo this must never run",))


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.5, 0.999])
def test_truncated_native_weights_are_damaged(tmp_path: Path, fraction: float) -> None:
    data = SHIPPED.read_bytes()
    cut = tmp_path / "model.safetensors"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(InputError) as info:
        load_for_inference(cut)
    assert "damaged or truncated safetensors file" in _one_line(info.value)
    assert "--preset" not in str(info.value)


def test_bit_flipped_header_is_damaged(tmp_path: Path) -> None:
    data = bytearray(SHIPPED.read_bytes())
    data[12] ^= 0xFF  # inside the JSON header
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match="damaged or truncated safetensors"):
        load_for_inference(bad)


def test_pickle_that_would_run_code_is_refused_without_the_unsafe_hint(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pth"
    torch.save({"model": _RunsCode()}, evil)
    with pytest.raises(InputError) as info:
        read_checkpoint(evil)
    text = _one_line(info.value)
    assert "contains the Python object posix.system" in text and "safetensors" in text
    assert "weights_only" not in text and "False" not in text


def test_truncated_pth_is_damaged(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save({"model": {"w": torch.ones(1000)}}, good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(InputError, match="damaged or truncated checkpoint"):
        read_checkpoint(cut)


def test_nan_weights_are_refused(tmp_path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(SHIPPED), "pt") as f:
        metadata = f.metadata()
    state = load_file(str(SHIPPED))
    key = sorted(k for k in state if k.startswith("segmenter.decoder."))[0]
    state[key] = state[key].clone().fill_(float("nan"))
    bad = tmp_path / "nan.safetensors"
    save_file(state, str(bad), metadata=metadata)
    with pytest.raises(InputError, match=f"weight {key} holds NaN or inf"):
        load_for_inference(bad)
