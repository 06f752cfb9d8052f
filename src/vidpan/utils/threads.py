"""CPU thread count and OpenMP wait policy for inference, chosen in one place.

Why (issue 12 item 6): PyTorch's OpenMP workers busy-wait between parallel regions. On a CPU
shared with other busy processes the spinning workers steal the cores the real work needs:
``vidpan segment`` with the shipped tiny model ran at 0.66 frames/s with the defaults and at
4.1 frames/s with ``OMP_NUM_THREADS=1`` or ``OMP_WAIT_POLICY=PASSIVE`` (same outputs). And a
small model gains nothing from a second thread: its ops are too short to split (one thread
9.1 vs two 6.6 frames/s on a quiet 2-core machine).

So:

- :func:`configure_openmp` (call before ``import torch``; the ``vidpan`` command does) bounds
  the spin of waiting workers (``GOMP_SPINCOUNT``, :data:`SPIN_COUNT`) unless the user set a
  wait policy or spin count: a worker spins briefly, then sleeps. Measured back to back
  (docs/performance.md): on a quiet 2-core machine the speed anchor ran 9.35 s with the bounded
  spin, 9.59 s with the default spin and 10.39 s with ``OMP_WAIT_POLICY=PASSIVE`` (sleeping at
  once costs a wake-up per parallel region); beside two busy processes a 24-frame 272x640 clip
  on 2 threads took 7.49 s bounded, 7.76 s passive and 9.19 s with the default spin.
- :func:`choose_threads` picks the thread count: an explicit ``--threads N`` wins; ``auto``
  gives 1 thread for models with at most :data:`SMALL_MODEL_PARAMS` parameters (the shipped
  tiny model, ~3M) and otherwise the CPUs this process may run on (``os.sched_getaffinity``),
  capped at :data:`MAX_AUTO_THREADS`. ``OMP_NUM_THREADS``, when set, is respected by ``auto``.
- :func:`apply_threads` sets ``torch.set_num_threads`` once, before the heavy work.

Nothing here changes a value computed: only how many cores compute it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Models up to this many parameters run single-threaded under ``auto``.
SMALL_MODEL_PARAMS = 20_000_000
#: ``auto`` never takes more threads than this (more rarely pays off for one video on CPU).
MAX_AUTO_THREADS = 8


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count to use and why (printed by ``--profile``)."""

    threads: int
    reason: str


#: Spin iterations of an idle OpenMP worker before it sleeps (libgomp's default is 300,000).
SPIN_COUNT = 30_000


def configure_openmp(environ: dict[str, str] | None = None) -> bool:
    """Set ``GOMP_SPINCOUNT`` to :data:`SPIN_COUNT` unless ``OMP_WAIT_POLICY`` or
    ``GOMP_SPINCOUNT`` is already set; True when it set it.

    Must run before the OpenMP runtime loads (before ``import torch``) to have any effect.
    ``VIDPAN_OMP_PASSIVE=0`` leaves the environment alone (the variable keeps its first name).
    """
    env = os.environ if environ is None else environ
    if env.get("VIDPAN_OMP_PASSIVE", "1") == "0" or "OMP_WAIT_POLICY" in env or "GOMP_SPINCOUNT" in env:
        return False
    env["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    return True


def available_cpus() -> int:
    """CPUs this process may run on (affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def parse_threads(text: str) -> int | None:
    """``auto`` -> None, a positive integer -> itself; anything else raises ValueError."""
    if text.strip().lower() == "auto":
        return None
    value = int(text)
    if value < 1:
        raise ValueError(f"threads must be >= 1 or auto, got {value}")
    return value


def choose_threads(requested: int | None, *, num_params: int | None) -> ThreadChoice:
    """The thread count for a model of ``num_params`` parameters (see the module docstring)."""
    if requested is not None:
        return ThreadChoice(requested, "--threads")
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return ThreadChoice(int(env), "OMP_NUM_THREADS")
    if num_params is not None and num_params <= SMALL_MODEL_PARAMS:
        return ThreadChoice(1, f"auto: small model ({num_params / 1e6:.1f}M parameters)")
    n = min(available_cpus(), MAX_AUTO_THREADS)
    return ThreadChoice(n, f"auto: {n} CPU(s) available")


def apply_threads(requested: int | None, *, num_params: int | None) -> ThreadChoice:
    """:func:`choose_threads`, then ``torch.set_num_threads`` with the result."""
    import torch

    choice = choose_threads(requested, num_params=num_params)
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice
