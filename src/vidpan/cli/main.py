"""Entry point of the ``vidpan`` command.

Each subcommand lives in its own module under :mod:`vidpan.cli` and exposes
``add_parser(subparsers)``; the parser it adds sets ``func`` to a ``run(args) -> int`` that
calls library functions. Bad input (:class:`vidpan.errors.InputError`) becomes a one-line
message on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from vidpan import __version__
from vidpan.errors import InputError
from vidpan.utils.allocator import tune_malloc
from vidpan.utils.signals import Terminated, terminate_as_interrupt
from vidpan.utils.threads import configure_openmp

# Subcommand modules, in the order `vidpan --help` lists them.
COMMANDS: tuple[str, ...] = (
    "segment",
    "eval",
    "train",
    "synth",
    "convert",
    "bench",
    "export",
    "serve",
    "models",
    "push",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidpan",
        description="Video panoptic / semantic segmentation (DVIS on a frozen DINOv2 ViT) and exact evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"vidpan {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"vidpan.cli.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    tune_malloc()
    configure_openmp()  # before torch loads: idle OpenMP workers sleep (vidpan.utils.threads)
    try:
        with terminate_as_interrupt():  # SIGTERM / SIGHUP clean up like Ctrl-C
            return int(args.func(args) or 0)
    except InputError as exc:
        print(f"vidpan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Terminated as exc:
        print(f"vidpan {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"vidpan {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
