"""Training logs: ``metrics.jsonl`` (one JSON object per logged iteration), TensorBoard when the
package is installed, a tqdm progress bar and plain log lines. Only rank 0 writes.

``metrics.jsonl`` records ``iteration`` (iterations done), ``lr`` (of the head group), ``loss``
(weighted total), every unweighted loss term (``loss_ce``, ``loss_mask``, ``loss_dice``,
``loss_ce_aux0`` ...), ``grad_norm`` (before clipping), ``time`` (seconds per iteration since
the last record), ``data_time`` and, after evaluations, the evaluation metrics prefixed ``eval/``.
On resume the records past the resumed iteration (written after the last checkpoint by the run
that stopped) are dropped, so the file always describes one consistent run.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path
from typing import Any

from vidpan.utils.atomic import atomic_write_text

METRICS_FILE = "metrics.jsonl"
LOG_FILE = "log.txt"


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``<run_dir>/metrics.jsonl`` (an empty list if there is none)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            with contextlib.suppress(json.JSONDecodeError):  # a torn last line after a crash
                out.append(json.loads(line))
    return out


class MetricsLogger:
    """Writes the logs of one run (a no-op on ranks other than 0).

    Args:
        run_dir: the run directory.
        enabled: True on rank 0.
        start_iteration: iterations already done (records beyond it are dropped).
        max_iter: for the progress bar.
        tensorboard: also write TensorBoard events if ``torch.utils.tensorboard`` imports.
        progress: show a tqdm bar on stderr.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        enabled: bool,
        start_iteration: int,
        max_iter: int,
        tensorboard: bool,
        progress: bool,
    ) -> None:
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._tb: Any = None
        self._bar: Any = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(self.run_dir) if int(r.get("iteration", 0)) <= start_iteration]
        atomic_write_text(self.run_dir / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in kept))
        self._file = open(self.run_dir / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115
        self._log = open(self.run_dir / LOG_FILE, "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._tb = None
            else:
                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=start_iteration + 1)
        if progress:
            from tqdm import tqdm

            self._bar = tqdm(
                total=max_iter, initial=start_iteration, desc="train", unit="it", dynamic_ncols=True
            )

    def info(self, message: str) -> None:
        """A line on the console (above the bar) and in ``log.txt``."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)
        self._log.write(message + "\n")
        self._log.flush()

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def record(self, values: dict[str, Any]) -> None:
        """Append one record (``iteration`` required) to every sink."""
        if not self.enabled:
            return
        clean = {
            k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in values.items()
        }
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()
        step = int(values["iteration"])
        if self._tb is not None:
            for k, v in values.items():
                if k != "iteration" and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, step)
        if self._bar is not None and "loss" in values:
            self._bar.set_postfix(loss=f"{values['loss']:.4g}", lr=f"{values.get('lr', 0):.3g}")

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()
        self._file.close()
        self._log.close()
