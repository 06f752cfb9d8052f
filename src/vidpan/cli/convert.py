"""``vidpan convert``: foreign checkpoints -> a native vidpan ``.safetensors`` (config embedded).

Formats: ``dvis-plus`` (DVIS++ / Mask2Former detectron2 ``.pth`` / ``.pkl``), ``dinov2``
(official DINOv2 ``.pth``), ``hf-dinov2`` (a Hugging Face DINOv2 directory, read offline). The
architecture comes from ``--preset`` (and ``--set`` overrides); the weights must match it exactly
(the error lists missing / unexpected keys and shape mismatches).
"""

from __future__ import annotations

import argparse
from pathlib import Path

# The checkpoint formats of ``vidpan.models.convert.FORMATS`` (spelled out here so that
# ``vidpan --help`` does not import torch; a test keeps the two equal).
FORMATS = ("dvis-plus", "dinov2", "hf-dinov2")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert DVIS++ / DINOv2 / Hugging Face weights to vidpan's format",
        description=__doc__,
    )
    p.add_argument("src", type=Path, help="checkpoint file or Hugging Face directory")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, type=Path, help="output .safetensors")
    p.add_argument(
        "--preset", required=True, help="architecture preset (tiny, vits, vitb, vitl, vitg) or a YAML"
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vidpan.config import load_config
    from vidpan.errors import InputError
    from vidpan.models.convert import convert_to_native

    if args.out.suffix != ".safetensors":
        raise InputError("output must end in .safetensors", path=args.out)
    config = load_config(args.preset, args.overrides)
    state = convert_to_native(args.src, args.format, config, args.out)
    params = sum(t.numel() for t in state.values())
    print(f"wrote {args.out}: {len(state)} tensors, {params / 1e6:.1f} M values, preset {config.name}")
    return 0
