"""Peak RSS of video inference on a 50- vs a 400-frame video (online, streaming, long modes).

Usage: ``python benchmarks/memory_bench.py`` (same as ``vidpan bench memory``).
"""

from vidpan.bench.memory import format_points, measure

if __name__ == "__main__":
    print(format_points(measure()))
