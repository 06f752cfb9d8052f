"""``vidpan push RUN_DIR_OR_WEIGHTS --repo owner/name``: publish a model to the Hugging Face Hub.

Uploads ``model.safetensors`` + ``config.yaml`` + a generated model card (architecture, recipe and
stage, data, the scores measured by ``vidpan eval`` with the command, licence chain). With
``--save-only DIR`` nothing is uploaded: the folder is written to DIR (``save_pretrained``).
Authentication: ``HF_TOKEN`` or ``hf auth login``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vidpan.errors import InputError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("push", help="publish weights + config + model card to the Hugging Face Hub",
                              description=__doc__)  # fmt: skip
    p.add_argument("src", type=Path, metavar="RUN_DIR_OR_WEIGHTS")
    p.add_argument("--repo", help="hub repository owner/name (created if missing)")
    p.add_argument("--save-only", type=Path, metavar="DIR", help="write the folder to DIR, do not upload")
    p.add_argument("--name", help="model name in the card (default: the config's name)")
    p.add_argument("--recipe", help="training recipe (name or YAML) that made the weights, for the card")
    p.add_argument(
        "--scores", type=Path, help="JSON from `vidpan eval ... --json` (or {scores: {mode: ...}})"
    )
    p.add_argument(
        "--scores-command", default="", help="the command that produced --scores (shown in the card)"
    )
    p.add_argument("--licence", default="not stated", help="licence of these weights")
    p.add_argument("--notes", type=Path, help="Markdown appended to the card")
    p.add_argument("--private", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vidpan.hub.publish import push, save_pretrained

    card = {"name": args.name, "recipe": args.recipe, "scores": args.scores, "scores_command": args.scores_command,
            "licence": args.licence, "notes": args.notes}  # fmt: skip
    if args.save_only is not None:
        out = save_pretrained(args.save_only, args.src, **card)
        print(f"wrote {out}/: model.safetensors, config.yaml, README.md")
        return 0
    if not args.repo:
        raise InputError("--repo owner/name is required (or --save-only DIR)")
    url = push(args.src, args.repo, private=args.private, **card)
    print(f"pushed to {args.repo}: {url}")
    return 0
