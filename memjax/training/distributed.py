"""Starting JAX's multi-process runtime from what the launcher put in the environment.

Every process of a multi-host run (a TPU pod slice, a SLURM job, a GPU cluster) runs the same
command; `initialize()` must be called before anything touches a device. Which call to make is read
from the environment, so no launcher needs extra flags:

- `JAX_COORDINATOR_ADDRESS` (host:port of process 0), `JAX_PROCESS_COUNT` and `JAX_PROCESS_ID`
  (maxtext's names): an explicit call with those values, for any launcher (and the tests).
- A SLURM job step with more than one task (`SLURM_NTASKS`, `SLURM_PROCID`, ...), a Cloud TPU VM
  (a TPU device file), or GKE's `TPU_WORKER_HOSTNAMES`: `jax.distributed.initialize()` without
  arguments, which reads the rest from SLURM's variables or the TPU metadata.
- Several slices joined over the data-center network (`MEGASCALE_COORDINATOR_ADDRESS`,
  `MEGASCALE_NUM_SLICES`, `MEGASCALE_SLICE_ID`: set by `launch tpu run --num_slices` and by GKE):
  the argument-less call, in which jax numbers the processes slice after slice.
- `MEMJAX_DISTRIBUTED=1` forces the argument-less call, `MEMJAX_DISTRIBUTED=0` turns it off.
"""

from __future__ import annotations

import glob
import os
from typing import Any, Mapping

EXPLICIT = ("JAX_COORDINATOR_ADDRESS", "JAX_PROCESS_COUNT", "JAX_PROCESS_ID")
SLURM = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
MULTISLICE = ("MEGASCALE_COORDINATOR_ADDRESS", "MEGASCALE_NUM_SLICES", "MEGASCALE_SLICE_ID")
TPU_DEVICE_FILES = ("/dev/accel*", "/dev/vfio/[0-9]*")  # v2-v4 / v5e and later


def on_cloud_tpu_vm() -> bool:
  return any(glob.glob(pattern) for pattern in TPU_DEVICE_FILES)


def initialize_args(environ: Mapping[str, str], tpu_vm: bool = False) -> dict[str, Any] | None:
  """Keyword arguments of `jax.distributed.initialize` for this environment, or None (one process)."""
  switch = environ.get("MEMJAX_DISTRIBUTED", "")
  if switch not in ("", "0", "1"):
    raise ValueError(f"MEMJAX_DISTRIBUTED must be 0 or 1, got {switch!r}")
  if switch == "0":
    return None
  given = [name for name in EXPLICIT[1:] if environ.get(name)]
  if given:
    missing = [name for name in EXPLICIT if not environ.get(name)]
    if missing:
      raise ValueError(f"{', '.join(given)} set but {', '.join(missing)} missing: a multi-process run "
                       f"needs all of {', '.join(EXPLICIT)}")
    try:
      count, index = int(environ["JAX_PROCESS_COUNT"]), int(environ["JAX_PROCESS_ID"])
    except ValueError:
      raise ValueError("JAX_PROCESS_COUNT and JAX_PROCESS_ID must be integers, got "
                       f"{environ['JAX_PROCESS_COUNT']!r} and {environ['JAX_PROCESS_ID']!r}") from None
    if not 0 <= index < count:
      raise ValueError(f"JAX_PROCESS_ID={index} is not in [0, JAX_PROCESS_COUNT={count})")
    return dict(coordinator_address=environ["JAX_COORDINATOR_ADDRESS"], num_processes=count,
                process_id=index)
  slurm_tasks = environ.get("SLURM_NTASKS", "1")
  slurm = all(name in environ for name in SLURM) and slurm_tasks.isdigit() and int(slurm_tasks) > 1
  gke_tpu = bool(environ.get("TPU_WORKER_HOSTNAMES") or environ.get("TPU_PROCESS_ADDRESSES"))
  if switch == "1" or slurm or gke_tpu or tpu_vm or multislice(environ):
    return {}
  return None


def multislice(environ: Mapping[str, str]) -> bool:
  """Whether MEGASCALE_* describe several slices; refuses a partial or inconsistent set, which jax
  would otherwise turn into a hang or a wrong process numbering."""
  given = [name for name in MULTISLICE if environ.get(name)]
  if not given:
    return False
  missing = [name for name in MULTISLICE if not environ.get(name)]
  if missing:
    raise ValueError(f"{', '.join(given)} set but {', '.join(missing)} missing: a multislice run needs all of "
                     f"{', '.join(MULTISLICE)}")
  count, index = environ["MEGASCALE_NUM_SLICES"], environ["MEGASCALE_SLICE_ID"]
  if not (count.isdigit() and index.isdigit() and int(index) < int(count)):
    raise ValueError(f"MEGASCALE_SLICE_ID={index} must be an integer in [0, MEGASCALE_NUM_SLICES={count})")
  return True


def initialize(environ: Mapping[str, str] | None = None) -> bool:
  """Calls `jax.distributed.initialize` when the environment describes a multi-process run."""
  environ = os.environ if environ is None else environ
  args = initialize_args(environ, tpu_vm=on_cloud_tpu_vm())
  if args is None:
    return False
  import jax

  jax.distributed.initialize(**args)
  return True
