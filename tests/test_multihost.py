"""Real multi-process training: two `python -m memjax.train` processes of 2 CPU devices each, joined by
`jax.distributed` on 127.0.0.1 (gloo collectives), against one process of 4 devices.

Tolerances: the two runs compute the same global batches with the same program; only the
all-reduce differs (gloo across processes vs. in-process), which changes float32 summation order.
Losses agree to rtol 1e-5 and parameters to atol 2e-5 (measured after 40 steps: losses 4.8e-7
absolute, parameters 1.0e-6; 41 of 42 metric lines bitwise equal).
"""

import json
import os
import signal

import jax
import numpy as np
import pytest

import launching
from memjax.training import distributed

STEPS = 30
OVERRIDES = {"train.steps": STEPS, "train.log_every": 1, "train.eval_every": STEPS,
             "train.checkpoint_every": 1000, "train.progress": False}  # checkpoints: preemption, end
SPEC = "clm.py:tiny"
TIMEOUT = 400  # seconds for one launch; a hang fails the test instead of blocking the suite


def records(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(workdir, reference):
  ours, theirs = records(workdir), records(reference)
  assert [(r["step"], r["split"]) for r in ours] == [(r["step"], r["split"]) for r in theirs]
  np.testing.assert_allclose([r["loss"] for r in ours], [r["loss"] for r in theirs], rtol=1e-5)
  a, b = launching.final_state(workdir), launching.final_state(reference)
  assert int(a["step"]) == int(b["step"]) == STEPS
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=2e-5), a["params"], b["params"])


@pytest.fixture(scope="module")
def prepared(data_cache, tmp_path_factory):
  """The tokenizer and token cache, built once here so that the children only read them."""
  from conftest import load_config
  from memjax import data

  data.prepare(load_config(SPEC).data)
  return tmp_path_factory.mktemp("multihost")


def two_processes(children, workdir, port, form, name):
  return [children.start(f"{name}{i}", launching.command(workdir, SPEC, **OVERRIDES),
                         launching.environment(2, **form(port, 2, i))) for i in range(2)]


def test_two_processes_preempted_and_resumed_train_like_one(prepared):
  """SIGTERM to process 1 of 2: both stop at the same step with one checkpoint and exit 42; the same
  command resumes, and every loss and the final parameters are those of one uninterrupted process
  of 4 devices on the same global batches. Only process 0 writes metrics (no duplicate lines)."""
  reference, workdir = prepared / "one_process", prepared / "two_processes"
  with launching.Children(prepared / "logs") as children:
    one = children.start("one", launching.command(reference, SPEC, **OVERRIDES), launching.environment(4))
    first = two_processes(children, workdir, launching.free_port(), launching.slurm, "slurm")
    signalled = launching.wait_for_step(children, workdir, 3, TIMEOUT, first)
    os.kill(first[1].pid, signal.SIGTERM)
    assert children.finish(first, TIMEOUT) == [42, 42], children.tails()
    stopped = launching.train_steps(workdir)
    assert stopped == list(range(1, stopped[-1] + 1)) and signalled <= stopped[-1] < STEPS
    assert launching.final_state(workdir)["step"] == stopped[-1]  # the preemption checkpoint
    assert "checkpoint saved at step" in children.log("slurm0") + children.log("slurm1")
    second = two_processes(children, workdir, launching.free_port(), launching.explicit, "explicit")
    assert children.finish([one, *second], TIMEOUT) == [0, 0, 0], children.tails()
  assert_same_run(workdir, reference)
  data_files = sorted(os.listdir(workdir / "checkpoints" / str(STEPS) / "data"))
  assert data_files == ["commit_success.txt", "process_0-of-2.json", "process_1-of-2.json"]


def test_ctrl_c_on_one_process_stops_every_process(prepared):
  """Ctrl-C reaches one host only: it becomes a coordinated stop with a checkpoint, never a hang."""
  workdir = prepared / "interrupted"
  with launching.Children(prepared / "logs") as children:
    procs = two_processes(children, workdir, launching.free_port(), launching.explicit, "interrupted")
    launching.wait_for_step(children, workdir, 3, TIMEOUT)
    os.kill(procs[1].pid, signal.SIGINT)
    assert children.finish(procs, 120) == [42, 42], children.tails()
  stopped = launching.train_steps(workdir)[-1]
  assert stopped < STEPS and launching.final_state(workdir)["step"] == stopped


def test_launcher_environments_reach_initialize():
  assert distributed.initialize_args({}) is None
  assert distributed.initialize_args(launching.explicit(1234, 2, 1)) == dict(
      coordinator_address="127.0.0.1:1234", num_processes=2, process_id=1)
  assert distributed.initialize_args(launching.slurm(1234, 2, 0)) == {}  # jax reads SLURM_*
  assert distributed.initialize_args(launching.slurm(1234, 1, 0)) is None  # one task: one process
  assert distributed.initialize_args({"TPU_WORKER_HOSTNAMES": "a,b"}) == {}  # GKE (xpk)
  assert distributed.initialize_args({}, tpu_vm=True) == {}  # Cloud TPU VM: the TPU metadata
  assert distributed.initialize_args({"MEMJAX_DISTRIBUTED": "1"}) == {}
  multislice = {"MEGASCALE_COORDINATOR_ADDRESS": "10.0.0.2:8080", "MEGASCALE_NUM_SLICES": "2", "MEGASCALE_SLICE_ID": "1"}
  assert distributed.initialize_args(multislice) == {}  # launch tpu run --num_slices=2: jax reads MEGASCALE_*
  with pytest.raises(ValueError, match="MEGASCALE_SLICE_ID missing"):
    distributed.initialize_args({"MEGASCALE_COORDINATOR_ADDRESS": "10.0.0.2:8080", "MEGASCALE_NUM_SLICES": "2"})
  with pytest.raises(ValueError, match=r"MEGASCALE_SLICE_ID=2 must be an integer in \[0, MEGASCALE_NUM_SLICES=2\)"):
    distributed.initialize_args(multislice | {"MEGASCALE_SLICE_ID": "2"})
  assert distributed.initialize_args({"MEMJAX_DISTRIBUTED": "0", "TPU_WORKER_HOSTNAMES": "a,b"}) is None
  with pytest.raises(ValueError, match="JAX_COORDINATOR_ADDRESS missing"):
    distributed.initialize_args({"JAX_PROCESS_COUNT": "2", "JAX_PROCESS_ID": "0"})
  with pytest.raises(ValueError, match=r"JAX_PROCESS_ID=2 is not in \[0, JAX_PROCESS_COUNT=2\)"):
    distributed.initialize_args(launching.explicit(1234, 2, 2))
