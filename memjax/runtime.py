"""Process-level settings applied by memjax's command-line entry points (train, bench, demo)."""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8  # glibc mallopt parameters


def tune_host_allocator() -> bool:
  """Keeps freed host memory mapped so XLA:CPU reuses it instead of faulting it in every step.

  XLA:CPU allocates each step's temporary buffers (hundreds of MB for a small LM) with malloc;
  glibc serves such sizes with fresh mmaps and returns them on free, so every step page-faults and
  zeroes them again (a fifth of a CPU step at the `bench` shape). One arena, no mmap and no trimming
  make the second step reuse the first step's pages. The cost is a higher resident set. Call it
  before jax starts its threads; set MEMJAX_MALLOC_TUNING=0 to opt out. Returns whether it applied.
  """
  if os.environ.get("MEMJAX_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
    return False
  try:
    libc = ctypes.CDLL("libc.so.6")
  except OSError:  # not glibc (e.g. musl)
    return False
  settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))
  return all(libc.mallopt(option, value) == 1 for option, value in settings)
