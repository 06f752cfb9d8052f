"""``vidpan export``: export the per-frame step of a model to ONNX or torch.export.

Parts (fixed shapes; post-processing and the Hungarian assignment stay outside the graphs):

- ``segmenter``: uint8 RGB frames [T, H, W, 3] (normalisation and padding to /32 inside) ->
  class logits, mask logits, embeddings, mask features;
- ``tracker-step``: one frame of the referring tracker, its state as explicit tensors in and out;
- ``online-step``: both, into the directory ``--out`` (``segmenter.onnx`` + ``tracker-step.onnx``
  and their manifests): the whole online per-frame step as ``vidpan segment --engine onnxruntime
  --exported DIR`` runs it. It is two graphs, not one: the Hungarian assignment of each frame's
  queries to the tracks sits between them and runs in Python.

``--size HxW`` is the size of the frames the model sees, i.e. after ``vidpan segment``'s resize
(short side ``inference.short_side``, default 720: a 1280x720 video -> 720x1280). ONNX files
are written by the dynamo-based ``torch.onnx.export`` at opset 18, deformable attention through
the gather path (no ``GridSample``). A manifest ``<out>.json`` goes beside the file. Run both
parts into one directory (or ``--part online-step``) for ``vidpan segment --engine onnxruntime
--exported DIR``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export the segmenter / tracker step to ONNX or torch.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--weights", required=True, help="vidpan .safetensors, or a DVIS++ checkpoint with --preset"
    )
    p.add_argument("--preset", help="architecture preset (tiny, vits, vitb, vitl, vitg) for foreign weights")
    p.add_argument("--part", required=True, choices=["segmenter", "tracker-step", "online-step"])
    p.add_argument("--size", required=True, help="HxW of the (resized) frames, e.g. 720x1280")
    p.add_argument("--format", dest="fmt", choices=["onnx", "torch-export"], default="onnx")
    p.add_argument(
        "--out", required=True, type=Path,
        help="output file (.onnx or .pt2; manifest: <out>.json); online-step: an output directory",
    )  # fmt: skip
    p.add_argument("--frames", type=int, default=1, help="segmenter: frames per call T (default 1)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--external-data", action="store_true", default=None,
                   help="ONNX: weights in <out>.data (automatic above protobuf's 2 GB limit)")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override (repeatable)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vidpan.errors import InputError
    from vidpan.export.exporter import export_part, parse_size
    from vidpan.export.manifest import Part, manifest_path, sha256_file
    from vidpan.models.convert import load_for_inference

    size = parse_size(args.size)
    suffix = ".onnx" if args.fmt == "onnx" else ".pt2"
    if args.part == "online-step":
        if args.out.suffix in (".onnx", ".pt2") or args.out.is_file():
            raise InputError(
                f"--out: --part online-step writes a directory, got the file name {args.out.name!r}"
            )
        parts: list[tuple[Part, Path]] = [
            ("segmenter", args.out / f"segmenter{suffix}"),
            ("tracker-step", args.out / f"tracker-step{suffix}"),
        ]
    elif args.out.suffix != suffix:
        raise InputError(f"--out: a {args.fmt} file must end in {suffix}, got {args.out.name!r}")
    else:
        parts = [(args.part, args.out)]  # argparse keeps it to the choices
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        if args.fmt == "onnx":
            raise InputError("ONNX export needs onnx and onnxscript: pip install vidpan[export]") from None
    config, model = load_for_inference(args.weights, preset=args.preset, overrides=args.overrides)
    weights = Path(args.weights)
    digest = sha256_file(weights) if weights.is_file() else None
    for part, out in parts:
        manifest = export_part(
            model, config, part=part, size=size, fmt=args.fmt, out=out, frames=args.frames,
            opset=args.opset, weights_sha256=digest, external_data=args.external_data,
        )  # fmt: skip
        total = sum((out.parent / f).stat().st_size for f in (manifest.file, *manifest.external_data))
        print(f"{part} ({args.fmt}{f', opset {manifest.opset}' if manifest.opset else ''}) "
              f"for {size[0]}x{size[1]} frames -> {out} ({total / 2**20:.1f} MiB)")  # fmt: skip
        for t in manifest.inputs:
            print(f"  in  {t.name} {list(t.shape)} {t.dtype}")
        for t in manifest.outputs:
            print(f"  out {t.name} {list(t.shape)} {t.dtype}")
        print(f"manifest: {manifest_path(out)}")
    if args.part == "online-step":
        print(
            f"run it: vidpan segment VIDEO --weights {args.weights} --engine onnxruntime --exported {args.out}"
        )
    return 0
