"""glibc ``malloc`` settings for large CPU tensors.

PyTorch's CPU allocator calls ``malloc``/``free`` for every tensor. glibc serves blocks above its
mmap threshold (dynamic, at most 32 MiB) with a fresh ``mmap`` and returns them with ``munmap`` on
free, so every large activation (a [6300, 1024] float32 FFN hidden state is 26 MB per frame) is
page-faulted in again, one 4 KiB page at a time, on every forward. On a 2-core machine that costs
more than the arithmetic of some layers: ``vidpan bench video`` ran 10.1 s with glibc's defaults
and 9.3 s with :func:`tune_malloc` (same outputs, peak RSS 1361 → 1425 MB).

:func:`tune_malloc` raises the mmap threshold and the trim threshold to 1 GiB, so freed blocks
stay in the heap and are reused. It only changes how memory is obtained, never any value. It is
called by the ``vidpan`` command line (not on ``import vidpan``: a library should not change its
host process's allocator); ``VIDPAN_MALLOC_TUNING=0`` turns it off. Elsewhere than Linux/glibc it
does nothing.

MKL keeps its own cache of GEMM work buffers (its "fast memory manager"), about 30 MB resident
for the whole run on the speed anchor. :func:`tune_malloc` sets ``MKL_DISABLE_FAST_MM=1`` (unless
it is already set) so those buffers go back to ``malloc``: peak RSS 1221-1243 MB instead of
1247-1266 MB on the speed anchor's offline forward (2 threads, three alternating runs each), with
the same CPU time (19.0-20.1 s user either way). It must be set before MKL loads (before
``import torch``), which is where the ``vidpan`` command calls this.

Memory against speed: blocks kept in the heap fragment it, so the peak RSS is higher.
``VIDPAN_MALLOC_MMAP_MB=N`` sets the mmap threshold to N MiB instead (trim threshold unchanged).
Measured on the speed anchor's segmenter, one 480x640 frame, 1 thread (busy 2-core machine):
1 GiB: 2.40 s user + 0.02 s sys per frame, peak RSS 1268-1313 MB; 4 MiB: 2.34 s user + 0.22 s
sys (130k more page faults per frame), peak 1137-1154 MB; 32 MiB: like 1 GiB, peak 1303-1335 MB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 1 << 30


def tune_malloc() -> bool:
    """Apply the settings above; True when glibc accepted them."""
    if os.environ.get("VIDPAN_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    os.environ.setdefault("MKL_DISABLE_FAST_MM", "1")
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mmap_mb = os.environ.get("VIDPAN_MALLOC_MMAP_MB", "")
    mmap_bytes = int(mmap_mb) << 20 if mmap_mb.isdigit() and int(mmap_mb) > 0 else THRESHOLD_BYTES
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_bytes)) and bool(mallopt(_M_TRIM_THRESHOLD, THRESHOLD_BYTES))
