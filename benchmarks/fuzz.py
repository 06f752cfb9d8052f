"""Run ``vidpan`` on a generated corpus of hostile inputs and classify what happened.

    python benchmarks/fuzz.py [--keep DIR] [--category NAME]

Every case (``benchmarks/fuzz_corpus.py``: containers and streams, frame folders, weights,
``--set`` overrides, training data, output locations) runs the CLI in-process
(``vidpan.cli.main.main``, stdout/stderr captured, a 120 s alarm per case) and is classified as

- **rejected**: exit 2, exactly one ``error:`` line, no traceback;
- **worked**: exit 0 and the output passes the case's check (size after rotation, timestamps...);
- **partial**: exit 3 (a truncated file processed up to the damage, the warning printed);
- **crash**: an exception escaped ``main``, a traceback was printed, or another exit code;
- **leftovers**: a ``.vidpan-partial-*`` work folder or ``vidpan-spill-*`` folder remained, or
  a rejected run changed its output folder (added, removed or replaced anything);
- **unexpected**: a valid input was rejected or a hostile one "worked".

Prints one table row per category (tried / rejected / worked / partial / crashes / leftovers /
unexpected) and every problem below it; exits 1 if there is any crash, leftover or unexpected
result. The ``serve uploads`` cases (``benchmarks/fuzz_serve.py``) call the server's upload
function instead of the CLI: an ``InputError`` with a one-line message (what the page shows) is
a rejection, any other exception a crash, and a rejected upload must leave its work directory
as it was. Signals (SIGTERM / SIGKILL mid-run) need real processes: ``tests/utils/test_signals.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_corpus import Case, Corpus

CASE_TIMEOUT_S = 120
COLUMNS = ("tried", "rejected", "worked", "partial", "crashes", "leftovers", "unexpected")


@dataclass
class Result:
    case: Case
    outcome: str  # rejected | worked | partial | crash
    message: str  # the error line, the failed check, or the traceback's last line
    leftovers: list[str]
    unexpected: bool
    seconds: float


class _CaseTimeout(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _CaseTimeout(f"no result after {CASE_TIMEOUT_S} s")


def _snapshot(out: Path | None) -> dict[str, float] | None:
    """Names (recursively) and mtimes under ``out``, or None if it does not exist."""
    if out is None or not out.exists():
        return None
    if not out.is_dir():
        return {"": out.stat().st_mtime}
    return {str(p.relative_to(out)): p.stat().st_mtime for p in out.rglob("*")}


def _leftovers(case: Case, tmp: Path, before: dict[str, float] | None, outcome: str) -> list[str]:
    found = [str(p) for p in tmp.rglob("vidpan-spill-*")]
    out = case.out
    if out is not None:
        where = out if out.is_absolute() else (case.cwd or Path.cwd()) / out
        parent = where if where.is_dir() else where.parent
        if parent.exists():
            found += [str(p) for p in parent.glob(".vidpan-partial-*")]
            found += [str(p) for p in parent.glob(f".{where.name}.*.partial")]
        if outcome == "rejected" and out != Path("/proc/x"):
            after = _snapshot(where)
            if after != before:
                changed = sorted(set(after or {}) ^ set(before or {})) or ["(files replaced)"]
                found.append(f"{where}: changed by a rejected run: {changed[:4]}")
    return found


def _work_leftovers(work: Path, before: dict[str, float] | None, outcome: str) -> list[str]:
    found = [str(p) for p in work.rglob("*partial*")]
    if outcome == "rejected":
        after = _snapshot(work)
        for snap in (before, after):  # the server's runs/ folder itself may stay (empty)
            if snap is not None and (work / "runs").is_dir() and not any((work / "runs").iterdir()):
                snap.pop("runs", None)
        if after != before:
            changed = sorted(set(after or {}) ^ set(before or {})) or ["(files replaced)"]
            found.append(f"{work}: changed by a rejected upload: {changed[:4]}")
    return found


def run_call(case: Case, tmp: Path) -> Result:
    """A library-call case (``serve uploads``): InputError with one line = rejected."""
    from vidpan.errors import InputError

    assert case.call is not None and case.work is not None
    before = _snapshot(case.work)
    old_tmp = tempfile.tempdir
    tempfile.tempdir = str(tmp)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_TIMEOUT_S)
    start = time.perf_counter()
    try:
        case.call()
        outcome, message = "worked", ""
    except InputError as exc:
        text = str(exc)
        one_line = bool(text) and "\n" not in text and "Traceback" not in text
        outcome, message = ("rejected", text) if one_line else ("crash", f"not one line: {text[:300]!r}")
    except BaseException as exc:
        outcome = "crash"
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        tempfile.tempdir = old_tmp
    seconds = time.perf_counter() - start
    leftovers = [str(p) for p in tmp.rglob("vidpan-spill-*")] + _work_leftovers(case.work, before, outcome)
    unexpected = (
        (case.expect == "reject" and outcome != "rejected") or (case.expect == "work" and outcome != "worked")
    ) and outcome != "crash"
    return Result(case, outcome, message, leftovers, unexpected, seconds)


def run_case(case: Case, tmp: Path) -> Result:
    from vidpan.cli.main import main

    if case.call is not None:
        return run_call(case, tmp)

    out_abs = (
        None
        if case.out is None
        else (case.out if case.out.is_absolute() else (case.cwd or Path.cwd()) / case.out)
    )
    before = _snapshot(out_abs)
    stdout, stderr = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    start = time.perf_counter()
    old_tmp = tempfile.tempdir
    tempfile.tempdir = str(tmp)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_TIMEOUT_S)
    rc: int | None = None
    crash = ""
    try:
        if case.cwd is not None:
            os.chdir(case.cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                rc = main(case.argv)
            except SystemExit as exc:  # argparse
                rc = exc.code if isinstance(exc.code, int) else 2
    except BaseException as exc:
        crash = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(cwd)
        tempfile.tempdir = old_tmp
    seconds = time.perf_counter() - start
    err = stderr.getvalue()
    errors = [line for line in err.splitlines() if ": error: " in line or line.startswith("vidpan ")]
    if crash or "Traceback (most recent call last)" in err or rc not in (0, 2, 3):
        outcome, message = "crash", crash or f"exit {rc}: {err.strip().splitlines()[-1:] or ''}"
    elif rc == 2:
        if len([e for e in errors if ": error: " in e]) == 1:
            outcome, message = "rejected", next(e for e in errors if ": error: " in e)
        else:
            outcome, message = "crash", f"exit 2 without exactly one error line: {err.strip()[:300]!r}"
    elif rc == 3:
        outcome, message = "partial", (errors[-1] if errors else err.strip()[-200:])
    else:
        outcome, message = "worked", ""
        if case.check is not None and out_abs is not None:
            try:
                problem = case.check(out_abs)
            except Exception as exc:
                problem = f"check failed: {type(exc).__name__}: {exc}"
            if problem:
                message = problem
    leftovers = _leftovers(case, tmp, before, outcome)
    unexpected = (
        (case.expect == "reject" and outcome != "rejected")
        or (case.expect == "work" and (outcome != "worked" or bool(message)))
        or (case.expect == "partial" and outcome != "partial")
    ) and outcome != "crash"
    return Result(case, outcome, message, leftovers, unexpected, seconds)


def table(results: list[Result]) -> str:
    cats = list(dict.fromkeys(r.case.category for r in results))
    rows = []
    for cat in [*cats, "total"]:
        rs = [r for r in results if cat in ("total", r.case.category)]
        counts = {
            "tried": len(rs),
            "rejected": sum(r.outcome == "rejected" for r in rs),
            "worked": sum(r.outcome == "worked" for r in rs),
            "partial": sum(r.outcome == "partial" for r in rs),
            "crashes": sum(r.outcome == "crash" for r in rs),
            "leftovers": sum(bool(r.leftovers) for r in rs),
            "unexpected": sum(r.unexpected for r in rs),
        }
        rows.append((cat, *(str(counts[c]) for c in COLUMNS)))
    widths = [max(len(r[i]) for r in [("category", *COLUMNS), *rows]) for i in range(len(COLUMNS) + 1)]
    fmt = (
        "| "
        + " | ".join(f"{{:<{widths[0]}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
        + " |"
    )
    lines = [fmt.format("category", *COLUMNS), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [fmt.format(*row) for row in rows]
    return "\n".join(lines)


def problems(results: list[Result]) -> list[str]:
    out = []
    for r in results:
        if r.outcome == "crash" or r.leftovers or r.unexpected:
            what = (
                "CRASH"
                if r.outcome == "crash"
                else ("UNEXPECTED " + r.outcome if r.unexpected else "LEFTOVERS")
            )
            out.append(f"{what}: [{r.case.category}] {r.case.name}: {r.message} {r.leftovers or ''}".rstrip())
    return out


def run_corpus(root: Path, *, category: str | None = None, verbose: bool = False) -> list[Result]:
    import torch

    torch.set_num_threads(1)  # tiny inputs: threads only add overhead
    cases = Corpus(root).build()
    if category:
        cases = [c for c in cases if c.category == category]
    tmp = root / "tmp"
    tmp.mkdir(exist_ok=True)
    results = []
    for case in cases:
        result = run_case(case, tmp)
        results.append(result)
        if verbose:
            print(
                f"{result.seconds:6.2f}s {result.outcome:8} [{case.category}] {case.name}: {result.message}"[
                    :200
                ]
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--keep", type=Path, help="generate the corpus here and keep it (default: a temp dir)"
    )
    parser.add_argument("--category", help="run one category only")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        root = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vidpan-fuzz-")))
        results = run_corpus(root, category=args.category, verbose=args.verbose)
    print(table(results))
    found = problems(results)
    for line in found:
        print(line)
    print(f"{len(results)} cases in {time.perf_counter() - start:.0f} s")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
