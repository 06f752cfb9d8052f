"""``vidpan bench scaling``: how time per frame and peak memory grow with video length and size.

Every point runs in a fresh child process (its own RSS high-water mark) exactly as
``vidpan bench memory`` does (:func:`vidpan.bench.memory._child`): a synthetic H.264 video of N
frames at H×W, a random-weight model of the preset, the usual VIPSeg + per-frame JSON outputs.
Two sweeps per (preset, mode):

- length: the frame counts of the grid at its first resolution;
- resolution: the resolutions of the grid at its first frame count.

Results: ``scaling.csv``, ``scaling.md`` (a markdown table) and ``scaling.png`` (four panels:
seconds per frame and peak RSS against frames and against megapixels; one line per preset and
mode). The full grid (:data:`FULL_GRID`, 50 → 2000 frames, 360p → 1080p, ViT-S and ViT-L) takes
hours on a CPU; :data:`QUICK_GRID` (the tiny preset, a few frames of small sizes) checks the
machinery in seconds.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from vidpan.utils.atomic import atomic_write_bytes, atomic_write_text


@dataclass(frozen=True)
class ScalingGrid:
    presets: tuple[str, ...]
    modes: tuple[str, ...]
    frames: tuple[int, ...]  # the length sweep, at sizes[0]
    sizes: tuple[tuple[int, int], ...]  # the resolution sweep (H, W), at frames[0]


FULL_GRID = ScalingGrid(
    presets=("vits", "vitl"),
    modes=("online", "offline", "long"),
    frames=(50, 200, 500, 2000),
    sizes=((360, 640), (720, 1280), (1080, 1920)),
)
QUICK_GRID = ScalingGrid(
    presets=("tiny",),
    modes=("online", "offline", "long"),
    frames=(4, 12),
    sizes=((64, 96), (128, 192)),
)


@dataclass(frozen=True)
class ScalingPoint:
    preset: str
    mode: str
    frames: int
    height: int
    width: int
    seconds: float
    peak_rss_mb: float

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / self.frames

    @property
    def megapixels(self) -> float:
        return self.height * self.width / 1e6


def grid_runs(grid: ScalingGrid) -> list[tuple[str, str, int, tuple[int, int]]]:
    """(preset, mode, frames, size) of every point, without duplicates, in run order."""
    cells: list[tuple[int, tuple[int, int]]] = [(f, grid.sizes[0]) for f in grid.frames]
    cells += [(grid.frames[0], s) for s in grid.sizes if (grid.frames[0], s) not in cells]
    return [(p, m, f, s) for p in grid.presets for m in grid.modes for f, s in cells]


def _child_point(video: Path, preset: str, mode: str, size: tuple[int, int]) -> dict[str, float]:
    cmd = [sys.executable, "-m", "vidpan.bench.memory", "--child", "--video", str(video), "--mode", mode,
           "--postprocess", "video", "--preset", preset, "--short-side", str(min(size))]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"scaling point {preset} {mode} {video.name} failed: {tail[0]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_scaling(grid: ScalingGrid, *, log: bool = True) -> list[ScalingPoint]:
    """Measure every point of ``grid`` (one child process each)."""
    from vidpan.bench.memory import write_moving_video

    points = []
    with tempfile.TemporaryDirectory(prefix="vidpan-scaling-") as tmp:
        videos: dict[tuple[int, tuple[int, int]], Path] = {}
        for preset, mode, frames, size in grid_runs(grid):
            if (frames, size) not in videos:
                path = Path(tmp) / f"v{frames}_{size[0]}x{size[1]}.mp4"
                write_moving_video(path, frames, *size)
                videos[frames, size] = path
            result = _child_point(videos[frames, size], preset, mode, size)
            point = ScalingPoint(
                preset, mode, frames, size[0], size[1], result["seconds"], result["peak_rss_mb"]
            )
            if log:
                print(
                    f"  {preset} {mode} {frames} frames {size[0]}x{size[1]}: "
                    f"{point.seconds_per_frame:.3f} s/frame, {point.peak_rss_mb:.0f} MB",
                    file=sys.stderr,
                )
            points.append(point)
    return points


def to_csv(points: list[ScalingPoint]) -> str:
    buf = io.StringIO()
    fields = ["preset", "mode", "frames", "height", "width", "seconds", "seconds_per_frame", "peak_rss_mb"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for p in points:
        row = asdict(p)
        row["seconds_per_frame"] = round(p.seconds_per_frame, 4)
        row["seconds"] = round(p.seconds, 3)
        row["peak_rss_mb"] = round(p.peak_rss_mb, 1)
        writer.writerow(row)
    return buf.getvalue()


def to_markdown(points: list[ScalingPoint]) -> str:
    lines = [
        "| preset | mode | frames | size | s/frame | peak RSS MB |",
        "|---|---|---:|---|---:|---:|",
    ]
    for p in points:
        lines.append(
            f"| {p.preset} | {p.mode} | {p.frames} | {p.height}x{p.width} | "
            f"{p.seconds_per_frame:.3f} | {p.peak_rss_mb:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot_png(points: list[ScalingPoint], grid: ScalingGrid, title: str) -> bytes:
    """Four panels (s/frame and peak RSS against frames and against megapixels) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    first_size, first_frames = grid.sizes[0], grid.frames[0]
    for preset in grid.presets:
        for mode in grid.modes:
            mine = [p for p in points if p.preset == preset and p.mode == mode]
            by_len = sorted((p for p in mine if (p.height, p.width) == first_size), key=lambda p: p.frames)
            by_res = sorted((p for p in mine if p.frames == first_frames), key=lambda p: p.megapixels)
            label = f"{preset} {mode}"
            axes[0, 0].plot(
                [p.frames for p in by_len], [p.seconds_per_frame for p in by_len], "o-", label=label
            )
            axes[1, 0].plot([p.frames for p in by_len], [p.peak_rss_mb for p in by_len], "o-", label=label)
            axes[0, 1].plot(
                [p.megapixels for p in by_res], [p.seconds_per_frame for p in by_res], "o-", label=label
            )
            axes[1, 1].plot(
                [p.megapixels for p in by_res], [p.peak_rss_mb for p in by_res], "o-", label=label
            )
    axes[0, 0].set(xlabel=f"frames (at {first_size[0]}x{first_size[1]})", ylabel="seconds per frame")
    axes[1, 0].set(xlabel=f"frames (at {first_size[0]}x{first_size[1]})", ylabel="peak RSS (MB)")
    axes[0, 1].set(xlabel=f"megapixels per frame ({first_frames} frames)", ylabel="seconds per frame")
    axes[1, 1].set(xlabel=f"megapixels per frame ({first_frames} frames)", ylabel="peak RSS (MB)")
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def write_outputs(points: list[ScalingPoint], grid: ScalingGrid, out_dir: Path, title: str) -> list[Path]:
    """scaling.csv, scaling.md and scaling.png in ``out_dir`` (each written atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "scaling.csv", out_dir / "scaling.md", out_dir / "scaling.png"]
    atomic_write_text(paths[0], to_csv(points))
    atomic_write_text(paths[1], f"{title}\n\n" + to_markdown(points))
    atomic_write_bytes(paths[2], plot_png(points, grid, title))
    return paths
