"""Start-up time of the command line: ``vidpan --help`` and every subcommand's ``--help``.

Run: ``python benchmarks/startup.py [--repeat 5]``. Prints the median wall time of each command
(a fresh process per run, as a user's shell starts it). Target (issue 12): every line <= 0.3 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from vidpan.cli.main import COMMANDS


def time_command(argv: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vidpan", *argv], capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = [["--help"], *[[name, "--help"] for name in COMMANDS]]
    worst = 0.0
    for argv in rows:
        seconds = time_command(argv, args.repeat)
        worst = max(worst, seconds)
        print(f"vidpan {' '.join(argv):<20} {seconds:.3f} s")
    print(f"slowest {worst:.3f} s (target <= 0.3 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
