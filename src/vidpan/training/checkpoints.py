"""Training checkpoints (atomic, exact resume), RNG state capture, and init-weight loading.

Layout of a run directory::

    <run>/checkpoints/iter_0000500.pt     training state after 500 iterations
    <run>/checkpoints/last                 name of the newest complete checkpoint (one line)

A checkpoint is written to a temporary file in the same directory, flushed and ``fsync``-ed, and
renamed into place; only then is ``last`` replaced the same way, and only then are checkpoints
beyond the newest ``keep`` deleted. A crash at any point leaves ``last`` naming a complete file.
Files are read back with ``torch.load(weights_only=True)`` — they hold only tensors and plain
Python values (RNG states included), never pickled code.

Init weights (the previous stage's export) are loaded with :func:`load_init_weights`: a part the
stage builds may be absent from the file (it then starts from its random initialisation, e.g. the
tracker when starting the tracker stage from a segmenter export) but never half-present; frozen
parts must come from the file; shape mismatches are errors unless the keys are listed in
``stage.init_reset``. What was loaded, reset and left random is reported.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidpan.errors import InputError
from vidpan.models.checkpoint import StateDict, load_native
from vidpan.utils.atomic import atomic_write

CHECKPOINT_DIR = "checkpoints"
LAST_POINTER = "last"
_NAME = re.compile(r"^iter_(\d{7,})\.pt$")


def checkpoint_name(iteration: int) -> str:
    return f"iter_{iteration:07d}.pt"


def save_checkpoint(run_dir: Path, iteration: int, payload: Mapping[str, Any], *, keep: int) -> Path:
    """Write ``payload`` as the checkpoint of ``iteration``, point ``last`` at it, prune old ones."""
    directory = Path(run_dir) / CHECKPOINT_DIR
    path = directory / checkpoint_name(iteration)
    atomic_write(path, lambda f: torch.save(dict(payload), f), fsync=True)
    atomic_write(directory / LAST_POINTER, lambda f: f.write(f"{path.name}\n".encode()), fsync=True)
    for old in list_checkpoints(run_dir)[:-keep]:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    directory = Path(run_dir) / CHECKPOINT_DIR
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``last`` names (or, if the pointer is missing, the newest complete file)."""
    directory = Path(run_dir) / CHECKPOINT_DIR
    pointer = directory / LAST_POINTER
    if pointer.is_file():
        name = pointer.read_text().strip()
        if _NAME.match(name) and (directory / name).is_file():
            return directory / name
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def remove_partial_files(run_dir: Path) -> None:
    """Delete temporary files a killed process left behind (never complete checkpoints)."""
    directory = Path(run_dir) / CHECKPOINT_DIR
    if directory.is_dir():
        for p in directory.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint (tensors and plain values only)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"cannot read training checkpoint ({exc})", path=path) from exc
    if not isinstance(obj, dict) or "iteration" not in obj or "model" not in obj:
        raise InputError("not a vidpan training checkpoint (no iteration / model)", path=path)
    return obj


# --------------------------------------------------------------------------------------------
# RNG states
# --------------------------------------------------------------------------------------------


def capture_rng(generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    """Python, NumPy, torch (CPU and CUDA) global RNG states plus the named generators."""
    np_state: Any = np.random.get_state()  # noqa: NPY002 (the legacy global state is what we save)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "generators": {k: g.get_state() for k, g in generators.items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any], generators: Mapping[str, torch.Generator]) -> None:
    """Inverse of :func:`capture_rng` (generators missing from ``state`` are an error)."""
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state["generators"]
    missing = sorted(set(generators) - set(saved))
    if missing:
        raise InputError(f"checkpoint has no state for the generators {missing}")
    for name, gen in generators.items():
        gen.set_state(saved[name])


def seed_globals(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeds the legacy global state others may use)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------
# Init weights
# --------------------------------------------------------------------------------------------


@dataclass
class InitReport:
    """What :func:`load_init_weights` did, for the log."""

    source: str
    loaded: dict[str, int] = field(default_factory=dict)  # component -> tensors loaded
    random: list[str] = field(default_factory=list)  # components left at their initialisation
    reset: list[str] = field(default_factory=list)  # keys dropped by stage.init_reset
    unused: dict[str, int] = field(default_factory=dict)  # checkpoint components this stage lacks

    def lines(self) -> list[str]:
        out = [f"init weights: {self.source}"]
        for comp, n in self.loaded.items():
            out.append(f"  loaded     {comp} ({n} tensors)")
        for comp in self.random:
            out.append(f"  not in the file, starts from scratch: {comp}")
        if self.reset:
            out.append(
                f"  re-initialised (stage.init_reset): {len(self.reset)} tensors, e.g. {self.reset[0]}"
            )
        for comp, n in self.unused.items():
            out.append(f"  ignored (not built by this stage): {comp} ({n} tensors)")
        return out


def components(keys: Sequence[str]) -> dict[str, list[str]]:
    """Group state keys into the units that are loaded all-or-nothing.

    ``segmenter.backbone.vit`` (the frozen ViT, which DINOv2 conversions provide alone),
    ``segmenter`` (everything else of it), ``tracker``, ``refiner``.
    """
    out: dict[str, list[str]] = {}
    for k in keys:
        vit = k.startswith("segmenter.backbone.vit.")
        comp = "segmenter.backbone.vit" if vit else k.split(".", 1)[0]
        out.setdefault(comp, []).append(k)
    return out


def load_init_weights(
    model: nn.Module,
    path: Path,
    *,
    frozen_components: Sequence[str],
    reset: Sequence[str] = (),
) -> InitReport:
    """Load a native vidpan checkpoint into the parts of ``model`` it covers (see module docstring).

    Args:
        model: the stage's model (a :class:`vidpan.models.build.DVIS`).
        path: native ``.safetensors`` (``vidpan convert`` or a stage export).
        frozen_components: components (see :func:`components`) that must come from the file.
        reset: key prefixes not taken from the file.
    """
    if not Path(path).is_file():
        raise InputError("init checkpoint not found (stage.init)", path=path)
    _, state = load_native(path)
    report = InitReport(source=str(path))
    for prefix in reset:
        if not any(k.startswith(prefix) for k in model.state_dict()):
            raise InputError(f"stage.init_reset: {prefix!r} matches no parameter of the model")
    report.reset = sorted(k for k in state if any(k.startswith(p) for p in reset))
    state = {k: v for k, v in state.items() if k not in set(report.reset)}
    expected = {k: v for k, v in model.state_dict().items() if not any(k.startswith(p) for p in reset)}
    want, have = components(list(expected)), components(list(state))
    problems: list[str] = []
    for comp, keys in have.items():
        if comp not in want:
            report.unused[comp] = len(keys)
    used: StateDict = {}
    for comp, keys in want.items():
        present = [k for k in keys if k in state]
        if not present:
            if comp in frozen_components:
                problems.append(f"{comp} is frozen in this stage but the file has no weights for it")
            else:
                report.random.append(comp)
            continue
        missing = [k for k in keys if k not in state]
        extra = [k for k in have.get(comp, []) if k not in expected]
        if missing:
            problems.append(f"{comp}: {len(missing)} missing keys, e.g. {missing[:3]}")
        if extra:
            problems.append(f"{comp}: {len(extra)} unexpected keys, e.g. {extra[:3]}")
        for k in present:
            if tuple(state[k].shape) != tuple(expected[k].shape):
                problems.append(
                    f"{k}: shape {tuple(state[k].shape)} in the file, {tuple(expected[k].shape)} in the model"
                    " (list its prefix in stage.init_reset to re-initialise it)"
                )
            used[k] = state[k]
        report.loaded[comp] = len(present)
    if problems:
        raise InputError("init checkpoint does not fit this stage:\n  " + "\n  ".join(problems), path=path)
    model.load_state_dict(used, strict=False)
    return report
