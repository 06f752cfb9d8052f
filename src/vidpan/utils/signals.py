"""SIGTERM and SIGHUP handled like Ctrl-C, so every run cleans up after itself.

``timeout``, ``docker stop``, Slurm and Kubernetes stop a process with SIGTERM (and a closed
terminal sends SIGHUP), whose default action kills Python at once: no ``finally`` block runs, so
a ``.partial`` output folder and spilled tensors would stay behind. Within
:func:`terminate_as_interrupt` these signals raise :class:`Terminated`, a ``KeyboardInterrupt``
subclass, in the main thread, so the same unwinding as Ctrl-C happens (``with`` blocks delete
their work folders, :mod:`vidpan.inference.output`) and the command exits with 128 + the signal
number, as a shell reports a process killed by it. A second signal while cleaning up is ignored
(cleanup is short); SIGKILL cannot be caught: :mod:`vidpan.utils.locks` covers it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives a handled signal."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def terminate_as_interrupt(signals: tuple[int, ...] = HANDLED) -> Iterator[None]:
    """Within the block, ``signals`` raise :class:`Terminated` (once); handlers restored after.

    A no-op outside the main thread (Python delivers signals to the main thread only) and for
    signals the process ignores (``nohup`` sets SIGHUP to ignored: it stays ignored).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if fired:
            return  # already unwinding
        fired = True
        raise Terminated(signum)

    previous: dict[int, object] = {}
    for signum in signals:
        current = signal.getsignal(signum)
        if current == signal.SIG_IGN:
            continue
        previous[signum] = current
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)  # type: ignore[arg-type]
