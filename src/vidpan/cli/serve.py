"""``vidpan serve``: a local web page (Gradio) to segment a video and look at the result.

Upload a video or pick the sample, choose the mode and the task; the page shows progress, then
the overlay video, a per-track table (id, class, first/last frame, frames present, mean score), a
track timeline (tracks × frames), the scores when a VIPSeg ground-truth zip is given, and a zip
of all outputs. Serves on 127.0.0.1 by default; no share link, no analytics, nothing is
downloaded. Needs the optional extra: ``pip install vidpan[serve]``. See docs/serve.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_WEIGHTS = "synthetic-tiny"  # the zoo name of the model shipped in the package


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="a local web page to segment videos (Gradio)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--weights", default=DEFAULT_WEIGHTS,
                   help="weights: a file, a zoo name (`vidpan models`) or hf://owner/repo/path "
                        "(default: synthetic-tiny, the model shipped in the package)")  # fmt: skip
    p.add_argument("--preset", help="architecture preset for foreign weights (as vidpan segment)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="largest video upload (default 50 MB)")
    p.add_argument("--max-frames", type=int, default=300, help="longest video in frames (default 300)")
    p.add_argument("--work-dir", type=Path,
                   help="where runs and the sample are kept (default: a temporary directory, deleted on exit)")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. inference.window_size=5 (repeatable)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="less server output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import contextlib
    import tempfile
    import threading

    from vidpan.errors import InputError
    from vidpan.serve.app import Server, import_gradio, launch
    from vidpan.serve.uploads import Limits

    if not 0 < args.port < 65536:
        raise InputError(f"--port: expected 1..65535, got {args.port}")
    if args.max_upload_mb <= 0 or args.max_frames < 1:
        raise InputError("--max-upload-mb and --max-frames must be positive")
    import_gradio()  # a missing extra fails before the model loads
    from vidpan.data.categories import CategoryMapping
    from vidpan.inference.predictor import VideoPredictor
    from vidpan.models.convert import load_for_inference

    config, model = load_for_inference(args.weights, preset=args.preset, overrides=args.overrides)
    predictor = VideoPredictor(model, config, device=args.device, precision=args.precision,
                               categories=CategoryMapping.from_model_config(config.model))  # fmt: skip
    limits = Limits(max_megabytes=args.max_upload_mb, max_frames=args.max_frames)
    with contextlib.ExitStack() as stack:
        work_dir = args.work_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="vidpan-serve-"))
        )
        work_dir.mkdir(parents=True, exist_ok=True)
        server = Server(
            predictor=predictor, limits=limits, work_dir=work_dir.resolve(), device_lock=threading.Lock()
        )
        print(f"vidpan serve: {args.weights} on http://{args.host}:{args.port} (Ctrl+C to stop)", flush=True)
        # SIGTERM / SIGHUP arrive as KeyboardInterrupt (vidpan.cli.main): Gradio closes, the
        # work directory is deleted.
        launch(server, host=args.host, port=args.port, quiet=args.quiet)
    return 0
