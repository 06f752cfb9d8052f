"""``--weights`` resolution: a zoo name, ``hf://owner/repo[@rev]/path`` or a local path -> a local file.

Remote weights are downloaded and verified (:mod:`vidpan.hub.download`). Foreign checkpoints
(DVIS++ ``.pth`` / ``.pkl``, Hugging Face DINOv2) are converted **once** to vidpan's native
safetensors (config embedded) with the existing restricted readers — a pickle is never executed —
and cached beside the download, keyed by the source's SHA-256, :data:`CONVERTER_VERSION` and the
target architecture, so the second run starts from safetensors.

Local paths pass through unchanged (a foreign local checkpoint is still converted in memory by
:func:`vidpan.models.convert.load_for_inference`, as before).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vidpan.errors import InputError
from vidpan.hub.spec import WeightsSpec, parse_spec
from vidpan.hub.zoo import ZooEntry

if TYPE_CHECKING:
    from vidpan.config import Config

# Bump when a converter's output for the same input changes: old cached conversions are ignored.
# 2: zoo entries with `categories` embed their label space (names, dataset ids, colours).
CONVERTER_VERSION = "2"
CONVERTED_DIR = "vidpan-converted"


@dataclass(frozen=True)
class ResolvedWeights:
    """Where ``--weights`` ended up.

    ``path`` is a native vidpan ``.safetensors`` for every remote spec and for zoo entries; a
    local spec passes through unchanged (``native`` says whether it is native).
    """

    path: Path
    spec: WeightsSpec
    native: bool
    source: Path | None = None  # the downloaded original (remote specs)
    source_sha256: str = ""
    converted: bool = False  # converted during this call (False: from the conversion cache / native)

    @property
    def entry(self) -> ZooEntry | None:
        return self.spec.entry


# Label-space fields do not change the converted tensors (the trainer fills them in after its
# first resolve_init call): leaving them out keeps one conversion per architecture.
_LABEL_FIELDS = ("class_names", "dataset_category_ids", "class_colors")


def _fingerprint(config: Config) -> str:
    from vidpan.config import to_dict

    data = to_dict(config)
    for key in _LABEL_FIELDS:
        data["model"].pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def target_config(
    spec: WeightsSpec, *, preset: str | None, overrides: Sequence[str], config: Config | None
) -> Config:
    """The architecture a foreign checkpoint is converted into: ``config``, else ``preset`` (or
    the zoo entry's preset) with the entry's visible overrides, then the user's ``overrides``."""
    from vidpan.config import load_config

    if config is not None:
        return config
    entry = spec.entry
    name = preset or (entry.preset if entry is not None else None)
    if name is None:
        raise InputError(
            f"--weights {spec.text}: not a vidpan weights file; pass --preset (e.g. vitl) to name the "
            "architecture it was trained with"
        )
    entry_overrides: list[str] = list(entry.overrides) if entry is not None else []
    if entry is not None and entry.mode:
        entry_overrides.append(f"inference.mode={entry.mode}")
    if entry is not None and entry.task in ("vps", "vss", "vis"):
        entry_overrides.append(f"inference.task={entry.task}")
    # Only architecture overrides shape the converted file; inference settings are applied at load
    # time, so a cached conversion never carries one run's --set inference.* into the next.
    model_overrides = [o for o in overrides if o.strip().startswith("model.")]
    target = load_config(name, [*entry_overrides, *model_overrides])
    return with_label_space(target, entry) if entry is not None and entry.categories else target


def with_label_space(config: Config, entry: ZooEntry) -> Config:
    """``config`` with the zoo entry's label space (class names, dataset ids, colours) in model order.

    The names travel inside the converted safetensors, so ``vidpan segment --weights <zoo name>``
    writes them (and the dataset's category ids) with no ``--categories`` flag.
    """
    import dataclasses

    from vidpan.data.categories import CategoryMapping

    mapping = CategoryMapping.from_file(entry.categories_path)
    model = config.model
    if (mapping.num_classes, mapping.num_things) != (model.num_classes, model.num_things):
        raise InputError(
            f"zoo entry {entry.name!r}: its label space ({entry.categories}: {mapping.num_classes} classes, "
            f"{mapping.num_things} things) does not fit the architecture ({model.num_classes} classes, "
            f"{model.num_things} things)"
        )
    model = dataclasses.replace(
        model,
        class_names=mapping.names,
        dataset_category_ids=mapping.dataset_ids,
        class_colors=mapping.colors,
    )
    return dataclasses.replace(config, model=model)


@dataclass(frozen=True)
class FetchedSource:
    """A downloaded, verified original (before conversion) and what the zoo says about it."""

    path: Path  # the file; for ``hf-dinov2`` its snapshot folder (config.json + model.safetensors)
    file: Path  # the weights file itself
    sha256: str
    cache_folder: Path
    format: str | None  # native | dvis-plus | hf-dinov2 | None (unknown: an hf:// spec)
    preset: str | None
    overrides: tuple[str, ...]
    entry: ZooEntry | None = None  # the zoo entry (its label space, for `vidpan convert`)


def fetch_source(spec: str | Path, *, fmt: str | None = None) -> FetchedSource:
    """Download and verify the file(s) a remote spec names (zoo entry or ``hf://``), no conversion.

    ``fmt="hf-dinov2"`` for an ``hf://`` spec also fetches the ``config.json`` beside the file.
    """
    from vidpan.hub.download import fetch_file, resolve_pattern

    parsed = parse_spec(spec)
    if not parsed.is_remote:
        raise InputError(f"{parsed.text}: not a remote model (zoo name or hf://owner/repo/path)")
    entry = parsed.entry
    what = f"model {parsed.text}" if entry is not None else parsed.text
    filename, expected = parsed.path, entry.sha256 if entry is not None else None
    if entry is not None and entry.file_pattern:
        filename, published = resolve_pattern(parsed.repo, parsed.revision, entry.file_pattern, what=what)
        expected = expected or published
    fetched = fetch_file(parsed.repo, filename, revision=parsed.revision, expected_sha256=expected, what=what)
    extras = list(entry.extra_files) if entry is not None else []
    if entry is None and fmt == "hf-dinov2":
        extras.append(posixpath.join(posixpath.dirname(filename), "config.json"))
    for extra in extras:
        fetch_file(parsed.repo, extra, revision=parsed.revision, what=what)
    fmt = entry.format if entry is not None else fmt
    return FetchedSource(
        path=fetched.path.parent if fmt == "hf-dinov2" else fetched.path,
        file=fetched.path,
        sha256=fetched.sha256,
        cache_folder=fetched.cache_folder,
        format=fmt,
        preset=entry.preset if entry is not None else None,
        overrides=entry.overrides if entry is not None else (),
        entry=entry,
    )


def resolve_weights(
    spec: str | Path,
    *,
    preset: str | None = None,
    overrides: Sequence[str] = (),
    config: Config | None = None,
) -> ResolvedWeights:
    """Resolve ``spec`` to a local file, downloading, verifying and converting as needed.

    Args:
        spec: zoo name, ``hf://owner/repo[@revision]/path``, or a local path.
        preset: architecture preset for foreign remote checkpoints (default: the zoo entry's).
        overrides: ``--set`` overrides; the ``model.*`` ones shape the conversion.
        config: the exact target config instead of ``preset`` (training init: the stage's model).
    """
    from vidpan.models.convert import convert_to_native, is_native

    parsed = parse_spec(spec)
    if not parsed.is_remote:
        assert parsed.local is not None
        if not parsed.local.exists():
            raise InputError(
                "weights not found (expected a file, a zoo name from `vidpan models`, or hf://owner/repo/path)",
                path=parsed.local,
            )
        return ResolvedWeights(path=parsed.local, spec=parsed, native=is_native(parsed.local))
    source = fetch_source(parsed.text)
    if source.format in (None, "native") and is_native(source.file):
        return ResolvedWeights(
            path=source.file, spec=parsed, native=True, source=source.file, source_sha256=source.sha256
        )
    if source.format == "native":
        raise InputError(f"{parsed.text}: not a vidpan weights file", path=source.file)
    if source.format is None and source.file.suffix == ".safetensors" and preset is None and config is None:
        raise InputError(
            f"{parsed.text}: not a vidpan weights file: for a DVIS++ safetensors pass --preset; for a "
            "Hugging Face DINOv2 use `vidpan convert ... --format hf-dinov2`",
            path=source.file,
        )
    target = target_config(parsed, preset=preset, overrides=overrides, config=config)
    out = (
        source.cache_folder
        / CONVERTED_DIR
        / f"{source.sha256[:16]}-c{CONVERTER_VERSION}-{_fingerprint(target)}.safetensors"
    )
    if not is_native(out):
        convert_to_native(
            source.path, "hf-dinov2" if source.format == "hf-dinov2" else "dvis-plus", target, out
        )
        converted = True
    else:
        converted = False
    return ResolvedWeights(
        path=out,
        spec=parsed,
        native=True,
        source=source.file,
        source_sha256=source.sha256,
        converted=converted,
    )


def is_remote_spec(spec: str | Path) -> bool:
    """Whether ``spec`` names weights that :func:`resolve_weights` would fetch (zoo or ``hf://``)."""
    text = str(spec)
    if Path(text).exists():
        return False
    return parse_spec(text).kind in ("zoo", "hf")
