"""Training runs in child processes for the multi-process and preemption tests: real `python -m
memjax.train` commands, each in its own process group, always killed when the test ends."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).parent.parent
LAUNCH_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_PROCESS_COUNT", "JAX_PROCESS_ID", "JAX_COORDINATOR_PORT",
              "MEMJAX_DISTRIBUTED", "XLA_FLAGS")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def command(workdir: pathlib.Path, spec: str, **overrides) -> list[str]:
  """`python -m memjax.train --config=configs/SPEC --workdir=W --config.KEY=VALUE ...`."""
  return [sys.executable, "-m", "memjax.train", f"--config={REPO / 'configs' / spec}", f"--workdir={workdir}",
          *[f"--config.{key}={value}" for key, value in overrides.items()]]


def environment(devices: int, **extra: str) -> dict[str, str]:
  """This environment without launcher variables, on `devices` CPU devices, plus `extra`."""
  env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV and not k.startswith("SLURM_")}
  env |= {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
          "PYTHONPATH": str(REPO)}
  return env | extra


def explicit(port: int, count: int, index: int) -> dict[str, str]:
  """The explicit launcher form (memjax/training/distributed.py)."""
  return {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_PROCESS_COUNT": str(count),
          "JAX_PROCESS_ID": str(index)}


def slurm(port: int, count: int, index: int) -> dict[str, str]:
  """What `srun --ntasks=COUNT` sets on one node (JAX detects it; no memjax variable)."""
  return {"SLURM_JOB_ID": "1", "SLURM_STEP_NODELIST": "127.0.0.1", "SLURM_NTASKS": str(count),
          "SLURM_PROCID": str(index), "SLURM_LOCALID": str(index), "JAX_COORDINATOR_PORT": str(port)}


class Children:
  """Started commands; `finish` waits for them, and leaving the block kills whatever still runs."""

  def __init__(self, logs: pathlib.Path):
    self.logs = logs
    self.procs: list[subprocess.Popen] = []
    self.names: list[str] = []

  def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    self.logs.mkdir(parents=True, exist_ok=True)
    with open(self.logs / f"{name}.log", "w") as log:
      proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    self.procs.append(proc)
    self.names.append(name)
    return proc

  def log(self, name: str) -> str:
    return (self.logs / f"{name}.log").read_text()[-3000:]

  def tails(self) -> str:
    return "\n".join(f"--- {name}:\n{self.log(name)}" for name in self.names)

  def finish(self, procs: list[subprocess.Popen], timeout: float) -> list[int]:
    """Exit codes of `procs` (all killed after `timeout` seconds: a hang fails the test)."""
    deadline = time.monotonic() + timeout
    codes = []
    for proc in procs:
      try:
        codes.append(proc.wait(max(deadline - time.monotonic(), 0.1)))
      except subprocess.TimeoutExpired:
        self.kill()
        raise AssertionError(f"a child did not finish in {timeout} s\n{self.tails()}") from None
    return codes

  def kill(self) -> None:
    for proc in self.procs:
      if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
          os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

  def __enter__(self) -> "Children":
    return self

  def __exit__(self, *exc) -> None:
    self.kill()


def train_steps(workdir: pathlib.Path) -> list[int]:
  path = workdir / "metrics.jsonl"
  if not path.exists():
    return []
  steps = []
  for line in path.read_text().splitlines():
    with contextlib.suppress(json.JSONDecodeError):
      record = json.loads(line)
      if record["split"] == "train":
        steps.append(record["step"])
  return steps


def wait_for_step(children: Children, workdir: pathlib.Path, step: int, timeout: float,
                  procs: list[subprocess.Popen] | None = None) -> int:
  """Waits until process 0 logged a training step >= `step` while the run's processes (`procs`,
  default every child) run; returns it. Another child may finish meanwhile (a reference run on
  warm compilation caches), but not fail."""
  deadline = time.monotonic() + timeout
  watched = children.procs if procs is None else procs
  while time.monotonic() < deadline:
    done = train_steps(workdir)
    if done and done[-1] >= step:
      return done[-1]
    if any(proc.poll() is not None for proc in watched) or any(
        proc.poll() not in (None, 0) for proc in children.procs):
      raise AssertionError(f"a child exited before step {step}\n{children.tails()}")
    time.sleep(0.02)
  raise AssertionError(f"step {step} not reached in {timeout} s\n{children.tails()}")


def final_state(workdir: pathlib.Path) -> dict:
  """The latest checkpoint's state as numpy arrays (whatever devices or processes wrote it)."""
  import jax
  import numpy as np

  from memjax.training import checkpoint, run_folder

  ocp = checkpoint.ocp
  mngr = checkpoint.manager(workdir / run_folder.CHECKPOINTS, items=(checkpoint.STATE,))
  step = mngr.latest_step()
  metadata = mngr.item_metadata(step)[checkpoint.STATE]
  metadata = getattr(metadata, "tree", metadata)
  as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), metadata,
                          is_leaf=lambda x: hasattr(x, "shape"))
  args = ocp.args.Composite(state=ocp.args.PyTreeRestore(restore_args=as_numpy))
  state = mngr.restore(step, args=args)[checkpoint.STATE]
  mngr.close()
  return state
