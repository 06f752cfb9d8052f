"""``vidpan models``: list the model zoo (name, task, backbone, size, reported scores, licence,
whether it is in the local cache). Use a name with ``--weights`` in ``vidpan segment``."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models", help="list the model zoo (names for --weights) and what is cached", description=__doc__
    )
    p.add_argument("--json", action="store_true", help="print the table as JSON (with every source)")
    p.set_defaults(func=run)


def _cached(entry: object) -> str:
    from vidpan.hub.zoo import ZooEntry

    assert isinstance(entry, ZooEntry)
    if entry.is_local:
        return "shipped"
    try:
        from vidpan.hub.download import cached_file, cached_pattern
    except ImportError:  # pragma: no cover
        return "?"
    try:
        filename = entry.file or cached_pattern(entry.repo, entry.revision, entry.file_pattern)
        if filename and cached_file(entry.repo, filename, entry.revision) is not None:
            return "yes"
    except Exception:  # no huggingface_hub: nothing can be cached
        return "no"
    return "no"


def _scores(entry: object) -> str:
    from vidpan.hub.zoo import ZooEntry

    assert isinstance(entry, ZooEntry)
    shown = [
        f"{s.metric} {s.value:.1f}{' ' + s.mode if s.mode else ''}"
        for s in entry.scores
        if s.value is not None
    ]
    shown = shown[:2]
    return ", ".join(shown) or "-"


def run(args: argparse.Namespace) -> int:
    import json

    from vidpan.config import to_dict
    from vidpan.hub.zoo import load_zoo

    zoo = load_zoo()
    if args.json:
        print(json.dumps({n: {**to_dict(e), "cached": _cached(e)} for n, e in zoo.items()}, indent=1))
        return 0
    rows = [("NAME", "TASK", "BACKBONE", "SIZE", "REPORTED SCORES", "LICENCE", "CACHED")]
    for name, e in zoo.items():
        rows.append(
            (name, e.task, e.backbone.split(" (")[0], e.size, _scores(e), e.licence.split(";")[0], _cached(e))
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(
        "\nuse: vidpan segment VIDEO --weights NAME   (sources of every fact: vidpan models --json, docs/models.md)"
    )
    return 0
