"""The manifest JSON written beside every exported file (``segmenter.onnx`` -> ``segmenter.onnx.json``).

It says what the file computes and how to call it, so that a runtime (vidpan's onnxruntime
engine, or anyone else's) needs nothing but the file and this JSON: the part, the fixed input
size, the format and opset, every input and output with its shape and dtype, the vidpan version
and the SHA-256 of the weights it was exported from (the engine refuses other weights).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vidpan.errors import InputError
from vidpan.utils.atomic import atomic_write_json

Part = Literal["segmenter", "tracker-step"]
Format = Literal["onnx", "torch-export"]
PARTS: tuple[str, ...] = ("segmenter", "tracker-step")
FORMATS: tuple[str, ...] = ("onnx", "torch-export")
SUFFIXES = {"onnx": ".onnx", "torch-export": ".pt2"}
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy name: uint8, float32, int64


@dataclass(frozen=True)
class ExportManifest:
    """Everything a runtime needs to know about one exported file."""

    part: Part
    format: Format
    file: str  # the exported file's name, in the manifest's directory
    size: tuple[int, int]  # (H, W) of the frames given to the segmenter (before padding to /32)
    frames: int  # T: frames per segmenter call (1 for the tracker step: one frame per call)
    opset: int | None  # ONNX opset (None for torch-export)
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    vidpan_version: str
    weights_sha256: str | None  # SHA-256 of the weights file the graph was exported from
    config_name: str
    torch_version: str
    external_data: tuple[str, ...] = ()  # ONNX external-data files beside ``file`` (> 2 GB models)
    notes: dict[str, str] = field(default_factory=dict)
    manifest_version: int = MANIFEST_VERSION

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], *, source: str | Path = "manifest") -> ExportManifest:
        try:
            specs = {
                key: tuple(
                    TensorSpec(str(t["name"]), tuple(int(d) for d in t["shape"]), str(t["dtype"]))
                    for t in data[key]
                )
                for key in ("inputs", "outputs")
            }
            values = dict(data)
            values.update(specs)
            values["size"] = tuple(int(v) for v in data["size"])
            values["external_data"] = tuple(data.get("external_data", ()))
            return cls(**values)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{source}: not a vidpan export manifest ({exc})") from None

    def spec(self, name: str) -> TensorSpec:
        for t in (*self.inputs, *self.outputs):
            if t.name == name:
                return t
        raise KeyError(name)


def manifest_path(exported: str | Path) -> Path:
    """``dir/segmenter.onnx`` -> ``dir/segmenter.onnx.json``."""
    path = Path(exported)
    return path.with_name(path.name + ".json")


def write_manifest(manifest: ExportManifest, path: str | Path) -> None:
    atomic_write_json(path, manifest.to_json())


def read_manifest(path: str | Path) -> ExportManifest:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the export manifest ({exc})", path=path) from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a vidpan export manifest (expected a JSON object)")
    return ExportManifest.from_json(data, source=path)


def find_manifests(directory: str | Path) -> list[ExportManifest]:
    """Every export manifest in ``directory`` (JSON files with a ``part`` and a ``file``)."""
    found = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and "part" in data and "manifest_version" in data:
            found.append(ExportManifest.from_json(data, source=path))
    return found


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file (streamed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
