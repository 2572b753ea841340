"""Stopping cleanly when the machines are taken away: one checkpoint, then exit code 42.

Cloud TPU spot / preemptible VMs and SLURM (`--signal=TERM@120`) send SIGTERM before they stop a
job. Every process must then stop at the same step, or a collective of the last step would wait
forever for the processes that left. In a multi-process run JAX's preemption service (started by
`jax.distributed.initialize`) catches SIGTERM on any process and agrees on the step, read through
`CheckpointManager.reached_preemption` (`multihost_utils.reached_preemption_sync_point`); in a single
process a signal handler records it. The loop then saves a checkpoint at that step and raises
`Preempted`; `memjax.train` exits with `EXIT_CODE` (42: the exit code xpk restarts a workload on),
and running the same command again resumes.

Ctrl-C reaches one process of a multi-host run only. Saving there alone would hang the others in
the checkpoint's barriers, so in a multi-process run the first Ctrl-C is turned into a SIGTERM (a
coordinated stop with a checkpoint, as above) and a second one exits at once.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import jax

EXIT_CODE = 42
INTERRUPTED_EXIT_CODE = 130  # a second Ctrl-C: exit now, without a checkpoint


class Preempted(Exception):
  """Raised by the loop after the preemption checkpoint at `step` was written."""

  def __init__(self, step: int):
    super().__init__(f"preempted: checkpoint saved at step {step}; run the same command to resume")
    self.step = step


class Watch:
  """Answers `reached(step)`: must the run stop after this step? The same answer on every process."""

  def __init__(self, checkpoints: Any):
    self._checkpoints = checkpoints
    self._multi_process = jax.process_count() > 1
    self._received: int | None = None
    self._interrupts = 0
    self._previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():  # signal handlers live there only
      if self._multi_process:  # SIGTERM belongs to JAX's preemption service
        self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_interrupt)
      else:
        self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_term)

  def _on_term(self, signum: int, frame: Any) -> None:
    self._received = signum

  def _on_interrupt(self, signum: int, frame: Any) -> None:
    self._interrupts += 1
    if self._interrupts > 1:
      os._exit(INTERRUPTED_EXIT_CODE)
    print("memjax: interrupted; every process stops at the next common step with a checkpoint "
          "(Ctrl-C again to exit now)", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

  def reached(self, step: int) -> bool:
    """Call at every step, on every process, with the step just completed."""
    if self._multi_process:
      return bool(self._checkpoints.reached_preemption(step))
    return self._received is not None

  def close(self) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}
