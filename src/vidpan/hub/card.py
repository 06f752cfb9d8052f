"""Model cards: a README.md generated from what a checkpoint and its run actually record.

Sections: architecture (from the config embedded in the weights), recipe and stage (from the run
directory's ``config.yaml``, when there is one), data, scores measured by ``vidpan eval`` (from a
scores JSON, printed with the command that produced them — a card never shows a number without
one), the licence chain (vidpan code -> init weights -> training data), the files with their
SHA-256, and how to run the model. Free-form notes (e.g. training time) are appended verbatim.

Pure text generation: reads YAML/JSON and the safetensors header, imports no torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vidpan.config import Config, from_dict
from vidpan.errors import InputError

VIDPAN_LICENCE = "Apache-2.0"
SCORE_KEYS = ("VPQ", "VPQ_1246", "VPQ_thing", "VPQ_stuff", "STQ", "mIoU", "VC8", "VC16", "AP")


@dataclass(frozen=True)
class CardInputs:
    """Everything a card is generated from (see :func:`card_inputs`)."""

    name: str
    config: Config
    weights_name: str
    weights_sha256: str
    weights_bytes: int
    parts: tuple[str, ...]
    # Training configs (TrainConfig as plain dicts) of the stages that made the weights, in order:
    # the run directory's config.yaml, or every stage of a named recipe.
    stages: tuple[Mapping[str, Any], ...] = ()
    scores: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # mode/split -> metric -> value
    scores_command: str = ""
    licence: str = "not stated"
    init_licence: str = ""
    notes: str = ""


def _safetensors_header(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return dict(json.loads(f.read(n)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def read_scores(path: Path) -> dict[str, dict[str, float]]:
    """A ``vidpan eval`` JSON (flat ``{metric: value}``) or a per-mode file (``{"scores": {mode: {...}}}``)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read scores ({exc})", path=path) from exc
    if isinstance(data, dict) and isinstance(data.get("scores"), dict):
        return {str(k): dict(v) for k, v in data["scores"].items() if isinstance(v, dict)}
    if isinstance(data, dict) and any(isinstance(v, (int, float)) for v in data.values()):
        return {"": {k: float(v) for k, v in data.items() if isinstance(v, (int, float))}}
    raise InputError(
        'expected a `vidpan eval` JSON ({metric: value}) or {"scores": {mode: {...}}}', path=path
    )


def card_inputs(
    weights: Path,
    *,
    name: str | None = None,
    run_dir: Path | None = None,
    recipe: str | None = None,
    scores: Path | None = None,
    scores_command: str = "",
    licence: str = "not stated",
    notes: str = "",
) -> CardInputs:
    """Collect the card's facts from a native weights file (and optionally its run directory)."""
    header = _safetensors_header(weights)
    meta = header.get("__metadata__", {})
    if meta.get("format") != "vidpan" or "vidpan_config" not in meta:
        raise InputError("not a vidpan weights file (no embedded config)", path=weights)
    config = from_dict(Config, json.loads(meta["vidpan_config"]))
    parts = tuple(sorted({k.split(".", 1)[0] for k in header if k != "__metadata__"}))
    stages: list[dict[str, Any]] = []
    if recipe:
        from vidpan.config import to_dict
        from vidpan.training.config import load_train_configs

        stages = [to_dict(cfg) for cfg in load_train_configs(recipe)]
    elif run_dir is not None and (run_dir / "config.yaml").is_file():
        stages = [yaml.safe_load((run_dir / "config.yaml").read_text()) or {}]
    inits = [str(st.get("stage", {}).get("init", "")) for st in stages]
    external = [i for i in inits if i and not i.startswith("stage:")]
    init_licence = ""
    if external:
        from vidpan.hub.zoo import load_zoo

        zoo = load_zoo()
        init_licence = "; ".join(
            f"{i}: {zoo[i].licence}" if i in zoo else f"{i}: licence not recorded" for i in external
        )
    return CardInputs(
        name=name or config.name,
        config=config,
        weights_name=weights.name,
        weights_sha256=_sha256(weights),
        weights_bytes=weights.stat().st_size,
        parts=parts,
        stages=tuple(stages),
        scores=read_scores(scores) if scores is not None else {},
        scores_command=scores_command,
        licence=licence,
        init_licence=init_licence,
        notes=notes,
    )


def _architecture(c: Config, parts: Sequence[str]) -> list[str]:
    m = c.model
    v = m.vit
    regs = f", {v.num_register_tokens} registers" if v.num_register_tokens else ""
    return [
        "## Architecture",
        "",
        "DVIS (decoupled video segmentation): per-frame Mask2Former segmenter, online referring tracker, "
        "offline temporal refiner.",
        "",
        f"- parts in this file: {', '.join(parts)}",
        f"- ViT: {v.embed_dim} wide, {v.depth} blocks, {v.num_heads} heads, {v.ffn.upper()} FFN, patch {v.patch_size}"
        f"{regs}, {'frozen' if v.frozen else 'trained'}",
        f"- ViT-Adapter (no injectors): interactions {list(map(list, m.adapter.interaction_indexes))}",
        f"- Mask2Former decoder: {m.decoder.num_layers} layers, {m.decoder.num_queries} queries, hidden {m.decoder.hidden_dim}",
        f"- classes: {m.num_classes} ({m.num_things} things, {m.num_classes - m.num_things} stuff)",
        f"- inference default: mode `{c.inference.mode}`, task `{c.inference.task}`",
        "",
    ]


def _recipe(stages: Sequence[Mapping[str, Any]]) -> list[str]:
    out = ["## Recipe and stage", ""]
    if not stages:
        return [*out, "Not recorded (no run directory or recipe was given).", ""]
    out.append(
        f"Recipe `{stages[-1].get('name', '?')}`; the weights are the export of the last stage listed."
    )
    out += [
        "",
        "| stage | kind | init | iterations | base LR | clips x frames |",
        "|---|---|---|---:|---:|---|",
    ]
    for st in stages:
        stage, solver, data = st.get("stage", {}), st.get("solver", {}), st.get("data", {})
        frames = data.get("sampling", {}).get("num_frames", "?")
        out.append(
            f"| {stage.get('name') or '-'} | {stage.get('kind', '?')} | `{stage.get('init') or 'random'}` "
            f"| {solver.get('max_iter', '?')} | {solver.get('base_lr', '?')} "
            f"| {solver.get('clips_per_batch', '?')} x {frames} |"
        )
    data = stages[-1].get("data", {})
    out += [
        "",
        "## Data",
        "",
        f"- dataset: `{data.get('dataset', '?')}`, split `{data.get('split', '?')}`",
        *(f"- {k}: `{data[k]}`" for k in ("vipseg_root", "vspw_root", "coco_root") if data.get(k)),
        "",
    ]
    return out


def _scores(inputs: CardInputs) -> list[str]:
    out = ["## Scores", ""]
    if not inputs.scores:
        return [
            *out,
            "None measured yet. Measure them with `vidpan segment VAL_VIDEOS --weights model.safetensors --out pred` "
            "and `vidpan eval vps --gt-json ... --gt-masks ... --pred-json pred/pred.json --pred-masks pred/pan_pred "
            "--json scores.json`, then regenerate this card with `--scores scores.json`.",
            "",
        ]
    if not inputs.scores_command:
        raise InputError("scores given without the command that measured them (--scores-command)")
    keys = [k for k in SCORE_KEYS if any(k in s for s in inputs.scores.values())]
    out += ["| mode | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for mode, s in inputs.scores.items():
        cells = [
            f"{s[k]:.3g}" if k in s and abs(s[k]) < 1.5 else f"{s[k]:.1f}" if k in s else "-" for k in keys
        ]
        out.append(f"| {mode or '-'} | " + " | ".join(cells) + " |")
    out += ["", "Measured with:", "", "```bash", inputs.scores_command, "```", ""]
    return out


def _weights_arg(inputs: CardInputs) -> str:
    from vidpan.hub.zoo import load_zoo

    return inputs.name if inputs.name in load_zoo() else inputs.weights_name


def _no_init(inputs: CardInputs) -> str:
    if inputs.stages:
        return "none (each stage starts from random weights or an earlier stage of the recipe)"
    return "not recorded (no run directory or recipe given)"


def render_card(inputs: CardInputs) -> str:
    """The model card (Markdown) for ``inputs``."""
    c = inputs.config
    lines = [
        f"# Model card: `{inputs.name}`",
        "",
        f"vidpan weights (`{inputs.weights_name}`, {inputs.weights_bytes / 1e6:.1f} MB) for video "
        f"{c.inference.task.upper()}; the resolved config (class names, colours, thresholds) is embedded in "
        "the safetensors metadata. Card generated by `vidpan.hub.card`.",
        "",
        *_architecture(c, inputs.parts),
        *_recipe(inputs.stages),
        *_scores(inputs),
        "## Licence chain",
        "",
        f"- these weights: {inputs.licence}",
        f"- vidpan code: {VIDPAN_LICENCE}",
        f"- init weights: {inputs.init_licence or _no_init(inputs)}",
        "- training data: under its own terms (see the dataset's licence); not verified by this card",
        "",
        "## Files",
        "",
        "| file | sha256 |",
        "|---|---|",
        f"| `{inputs.weights_name}` | `{inputs.weights_sha256}` |",
        "",
        "## Use",
        "",
        "```bash",
        f"vidpan segment my.mp4 --weights {_weights_arg(inputs)} --out out/",
        "```",
        "",
    ]
    if inputs.notes.strip():
        lines += [inputs.notes.strip(), ""]
    return "\n".join(lines)
