"""``vidpan convert``: foreign checkpoints -> a native vidpan ``.safetensors`` (config embedded).

SRC is a checkpoint file, a Hugging Face directory, a zoo name (``vidpan models``) or
``hf://owner/repo[@revision]/path`` (downloaded and verified first). Formats: ``dvis-plus``
(DVIS++ / Mask2Former detectron2 ``.pth`` / ``.pkl``), ``dinov2`` (official DINOv2 ``.pth``),
``hf-dinov2`` (a Hugging Face DINOv2 directory, read offline). The architecture comes from
``--preset`` (and ``--set`` overrides); the weights must match it exactly (the error lists missing
/ unexpected keys and shape mismatches). For a zoo name, ``--format`` and ``--preset`` default to
the zoo entry's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vidpan.errors import InputError

FORMATS = ("dvis-plus", "dinov2", "hf-dinov2")  # = vidpan.models.convert.FORMATS (kept import-light)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert DVIS++ / DINOv2 / Hugging Face weights to vidpan's format",
        description=__doc__,
    )
    p.add_argument(
        "src", help="checkpoint file, Hugging Face directory, zoo name or hf://owner/repo[@rev]/path"
    )
    p.add_argument("--format", choices=FORMATS, help="source format (default for zoo names: the entry's)")
    p.add_argument("--out", required=True, type=Path, help="output .safetensors")
    p.add_argument(
        "--preset",
        help="architecture preset (tiny, vits, vitb, vitl, vitg) or a YAML (default for zoo names: the entry's)",
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vidpan.config import load_config
    from vidpan.hub.resolve import FetchedSource, fetch_source, is_remote_spec, with_label_space
    from vidpan.models.convert import convert_to_native

    if args.out.suffix != ".safetensors":
        raise InputError("output must end in .safetensors", path=args.out)
    src: str | Path = args.src
    fmt, preset = args.format, args.preset
    overrides: tuple[str, ...] = ()
    source: FetchedSource | None = None
    if is_remote_spec(args.src):
        source = fetch_source(args.src, fmt=args.format)
        src = source.path
        fmt = fmt or source.format
        preset = preset or source.preset
        overrides = source.overrides if args.preset is None else ()
    if fmt is None or fmt == "native":
        raise InputError("--format is required (dvis-plus, dinov2 or hf-dinov2)" if fmt is None else
                         f"{args.src} is already a vidpan weights file")  # fmt: skip
    if preset is None:
        raise InputError("--preset is required (tiny, vits, vitb, vitl, vitg or a YAML)")
    config = load_config(preset, [*overrides, *args.overrides])
    if source is not None and source.entry is not None and source.entry.categories:
        config = with_label_space(config, source.entry)  # the zoo entry's class names and dataset ids
    state = convert_to_native(src, fmt, config, args.out)
    params = sum(t.numel() for t in state.values())
    print(f"wrote {args.out}: {len(state)} tensors, {params / 1e6:.1f} M values, preset {config.name}")
    return 0
