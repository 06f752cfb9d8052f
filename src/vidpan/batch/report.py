"""What a batch run did, and the summary table printed at its end."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vidpan.batch.manifest import ManifestRecord

MAX_ROWS = 50  # longer batches: the failures and a count; the manifest has every row


@dataclass
class BatchReport:
    """The videos of one batch: attempted in this run (``records``) and skipped as finished."""

    out_dir: Path
    records: list[ManifestRecord] = field(default_factory=list)
    skipped: list[ManifestRecord] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the run, start-up included
    work_seconds: float | None = None  # ray: from all workers ready to the last video

    @property
    def done(self) -> list[ManifestRecord]:
        return [r for r in self.records if r.status == "done"]

    @property
    def failed(self) -> list[ManifestRecord]:
        return [r for r in self.records if r.status == "failed"]

    @property
    def ok(self) -> bool:
        """Every video of the batch is finished (done now or skipped as done before)."""
        return not self.failed

    def table(self) -> str:
        """A fixed-width table: one row per video, then the totals."""
        rows = [(r, "skipped") for r in self.skipped] + [(r, r.status) for r in self.records]
        rows.sort(key=lambda rs: rs[0].video)
        if len(rows) > MAX_ROWS:
            rows = [rs for rs in rows if rs[1] == "failed"][:MAX_ROWS]
        width = max([5, *(len(r.video) for r, _ in rows)])
        lines = [f"{'video':<{width}}  {'status':<7}  {'frames':>6}  {'seconds':>8}  {'frames/s':>8}  error"]
        for r, status in rows:
            fps = f"{r.frames / r.segment_seconds:8.2f}" if r.segment_seconds else f"{'':8}"
            lines.append(
                f"{r.video:<{width}}  {status:<7}  {r.frames:>6}  {r.seconds:>8.2f}  {fps}  {r.error or ''}"
            )
        frames = sum(r.frames for r in self.done)
        rate = f", {frames / self.seconds:.2f} frames/s" if self.seconds and frames else ""
        lines.append(
            f"{len(self.done)} done, {len(self.skipped)} skipped (finished before), {len(self.failed)} failed"
            f" -- {frames} frames in {self.seconds:.1f} s{rate}; manifest: {self.out_dir / 'manifest.jsonl'}"
        )
        if self.work_seconds:
            lines.append(
                f"workers busy {self.work_seconds:.1f} s after start-up"
                f" ({frames / self.work_seconds:.2f} frames/s, {len(self.done) / self.work_seconds:.3f} videos/s)"
            )
        if self.failed:
            lines.append(f"failures: {self.out_dir / 'failures.jsonl'}")
        return "\n".join(lines)
