"""The model zoo: short names (``dvis++/vipseg-vitl-offline``) -> where the weights are and what they are.

The table itself is package data (``vidpan/hub/zoo.yaml``, STYLE.md #1: a flat dict of named
entries is the only name -> object map); this module only types and validates it. Every fact in
the table carries its source; facts that could not be verified are marked so there, never guessed.
Stdlib + PyYAML only, so ``vidpan models`` and ``vidpan --help`` stay light.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from vidpan.config import from_dict
from vidpan.errors import InputError

ZOO_FILE = Path(__file__).with_name("zoo.yaml")
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # src/vidpan

WeightsFormat = Literal["native", "dvis-plus", "hf-dinov2"]


@dataclass(frozen=True)
class Score:
    """One number the authors report, and where they report it."""

    metric: str
    value: float | None
    split: str
    source: str
    mode: str = ""


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo (see the header of ``zoo.yaml`` for each field's meaning)."""

    task: str
    backbone: str
    description: str
    format: WeightsFormat
    preset: str
    label_space: str
    licence: str
    size: str
    name: str = ""
    repo: str = ""
    revision: str = "main"
    file: str = ""
    file_pattern: str = ""
    extra_files: tuple[str, ...] = ()
    sha256: str | None = None
    local: str = ""  # package-relative path of a shipped model
    categories: str = ""  # package-relative category JSON: the label space the weights predict in
    overrides: tuple[str, ...] = ()
    mode: str = ""
    scores: tuple[Score, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"zoo entry {self.name!r}"
        if self.local:
            if self.repo:
                raise InputError(f"{where}: give either `local` or `repo`, not both", path=ZOO_FILE)
        elif not self.repo or bool(self.file) == bool(self.file_pattern):
            raise InputError(
                f"{where}: needs `repo` and exactly one of `file` / `file_pattern`", path=ZOO_FILE
            )
        if self.sha256 is not None and (len(self.sha256) != 64 or not _is_hex(self.sha256)):
            raise InputError(f"{where}: sha256 must be 64 hex digits", path=ZOO_FILE)
        if self.categories and not self.categories_path.is_file():
            raise InputError(
                f"{where}: categories file {self.categories} is not in the package", path=ZOO_FILE
            )

    @property
    def is_local(self) -> bool:
        return bool(self.local)

    @property
    def local_path(self) -> Path:
        return PACKAGE_ROOT / self.local

    @property
    def categories_path(self) -> Path:
        return PACKAGE_ROOT / self.categories

    def hf_spec(self) -> str:
        """The ``hf://`` form of the entry (with the pattern when the exact file is not known)."""
        return f"hf://{self.repo}@{self.revision}/{self.file or self.file_pattern}"


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text.lower())


@functools.cache
def load_zoo(path: str | Path = ZOO_FILE) -> dict[str, ZooEntry]:
    """Parse and validate the zoo table -> ``{name: entry}`` (in table order)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read the model zoo ({exc})", path=path) from exc
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise InputError("expected a top-level `models:` mapping", path=path)
    out: dict[str, ZooEntry] = {}
    for name, raw in models.items():
        if not isinstance(raw, dict):
            raise InputError(f"models.{name}: expected a mapping", path=path)
        out[str(name)] = from_dict(ZooEntry, {**raw, "name": str(name)}, prefix=f"models.{name}")
    return out


def get_entry(name: str) -> ZooEntry:
    """The zoo entry called ``name``; :class:`InputError` listing the names otherwise."""
    zoo = load_zoo()
    if name not in zoo:
        raise InputError(f"unknown model {name!r} (zoo models: {', '.join(zoo)}; see `vidpan models`)")
    return zoo[name]


def is_zoo_name(spec: str) -> bool:
    return spec in load_zoo()


DEFAULT_MODEL = "synthetic-tiny"
