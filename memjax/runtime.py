"""Process-level settings applied by memjax's command-line entry points (train, bench, demo)."""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import platform
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


ONEDNN_MATMUL_FLAGS = ("--xla_cpu_experimental_onednn_custom_call=true",
                       "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_REDUCE")
ONEDNN_JAXLIB_VERSIONS = ((0, 12),)  # (major, minor) where the flags exist and were measured


def onednn_checked_here() -> bool:
  """Whether this is an x86 CPU with a jaxlib minor version the oneDNN flags were checked on."""
  try:
    jaxlib = tuple(int(part) for part in importlib.metadata.version("jaxlib").split(".")[:2])
  except (importlib.metadata.PackageNotFoundError, ValueError):
    return False
  return platform.machine().lower() in ("x86_64", "amd64") and jaxlib in ONEDNN_JAXLIB_VERSIONS


def tune_xla_cpu() -> bool:
  """Has XLA:CPU run matrix products with oneDNN (x86, jaxlib 0.12), YNNPACK kept for reductions.

  By default jaxlib 0.12 runs plain products on YNNPACK and those contracting the token axis (weight
  gradients) on Eigen; oneDNN is faster at both on x86 (by how much per `bench` train step:
  benchmarks/README.md).
  The flags are experimental and an unknown XLA_FLAGS entry aborts jax at start-up, so they are set
  only for the jaxlib minor versions they were checked on (`ONEDNN_JAXLIB_VERSIONS`; 0.10 has no
  oneDNN rewrite: its products would fall back to Eigen) and on x86. Flags the user already set in
  XLA_FLAGS are left alone. Only CPU compilation reads these flags. Call it before jax is imported;
  set MEMJAX_XLA_TUNING=0 to opt out. Returns whether it applied.
  """
  if os.environ.get("MEMJAX_XLA_TUNING", "1") == "0" or "jaxlib" in sys.modules:
    return False
  user_flags = os.environ.get("XLA_FLAGS", "")
  user_set = any(flag.split("=")[0] in user_flags for flag in ONEDNN_MATMUL_FLAGS)
  if user_set or not onednn_checked_here():
    return False
  os.environ["XLA_FLAGS"] = " ".join((user_flags, *ONEDNN_MATMUL_FLAGS)).strip()
  return True


def tune() -> dict[str, bool]:
  """Both process settings, for entry points to call first: which of them applied."""
  return {"malloc_tuning": tune_host_allocator(), "onednn_matmul": tune_xla_cpu()}
