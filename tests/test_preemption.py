"""Preemption in one process: a real SIGTERM stops the run at a step with one checkpoint, and a kill
between checkpoints leaves no duplicate or out-of-order metrics after the resume. Checkpoints are
asynchronous (the default), as in a real run. Two processes: tests/test_multihost.py."""

import os
import signal
import threading

import jax
import numpy as np
import pytest

import launching
from conftest import load_config
from memjax.training import checkpoint, loop, preemption, writers
from memjax.training.writers import read_metrics

SPEC = "clm.py:tiny"
STEPS = 24


def config(**train):
  cfg = load_config(SPEC)
  cfg.train.update(dict(steps=STEPS, log_every=1, eval_every=8, checkpoint_every=1000, progress=False,
                        async_checkpoints=True) | train)
  return cfg


@pytest.fixture(scope="module")
def straight(data_cache, tmp_path_factory):
  """An uninterrupted run of the same config, in this process: its metrics and final state."""
  workdir = tmp_path_factory.mktemp("straight")
  loop.run(config(), str(workdir))
  return read_metrics(workdir), launching.final_state(workdir)


def assert_continues_exactly(workdir, straight):
  metrics, state = straight
  resumed = read_metrics(workdir)
  assert [(r["step"], r["split"]) for r in resumed] == [(r["step"], r["split"]) for r in metrics]
  assert [r["loss"] for r in resumed] == [r["loss"] for r in metrics]
  jax.tree.map(np.testing.assert_array_equal, launching.final_state(workdir)["params"], state["params"])


def checkpoint_steps(workdir):
  mngr = checkpoint.manager(workdir / "checkpoints", items=(checkpoint.STATE,))
  steps = mngr.all_steps()
  mngr.close()
  return sorted(steps)


def test_sigterm_saves_one_checkpoint_and_the_run_resumes_exactly(straight, tmp_path, monkeypatch):
  """The signal is sent to this process while step 3's metrics are written, as a scheduler would."""
  if threading.current_thread() is not threading.main_thread():
    pytest.skip("signal handlers need the main thread")
  write = writers.MetricWriter.write

  def write_then_signal(self, step, split, metrics):
    write(self, step, split, metrics)
    if step == 3:
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(writers.MetricWriter, "write", write_then_signal)
  run = loop.Run(config(), str(tmp_path))
  with pytest.raises(preemption.Preempted) as stopped:
    run.train()
  run.close()
  monkeypatch.undo()
  assert stopped.value.step == 3
  assert checkpoint_steps(tmp_path)[-1] == 3 and 2 not in checkpoint_steps(tmp_path)  # interval 1000
  assert [r["step"] for r in read_metrics(tmp_path, "train")] == [1, 2, 3]
  assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is removed again
  loop.run(config(), str(tmp_path))
  assert_continues_exactly(tmp_path, straight)


def test_kill_between_checkpoints_then_sigterm_then_resume(straight, tmp_path):
  """`python -m memjax.train`: SIGKILL after a few (async) checkpoints, the same command resumes and
  gets SIGTERM (exit 42), and a last resume finishes: each metric line once, in order, and the
  result of an uninterrupted run."""
  argv = launching.command(tmp_path, SPEC, **{f"train.{k}": v for k, v in dict(
      steps=STEPS, log_every=1, eval_every=8, checkpoint_every=5, progress=False).items()})
  with launching.Children(tmp_path / "logs") as children:
    killed = children.start("killed", argv, launching.environment(8))
    launching.wait_for_step(children, tmp_path, 12, 300)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    logged, saved = launching.train_steps(tmp_path)[-1], checkpoint_steps(tmp_path)[-1]
    assert saved % 5 == 0 and saved <= logged
    preempted = children.start("preempted", argv, launching.environment(8))
    deadline = 300
    while "memory per device" not in children.log("preempted") and preempted.poll() is None and deadline > 0:
      deadline -= 0.05
      threading.Event().wait(0.05)
    os.kill(preempted.pid, signal.SIGTERM)  # during its first step: the handler is installed
    assert children.finish([preempted], 300) == [42], children.tails()
  steps = launching.train_steps(tmp_path)
  assert steps == list(range(1, steps[-1] + 1)) and saved < steps[-1] < STEPS
  assert checkpoint_steps(tmp_path)[-1] == steps[-1]
  loop.run(config(checkpoint_every=5), str(tmp_path))
  assert_continues_exactly(tmp_path, straight)


def test_metrics_past_the_restored_step_are_dropped(tmp_path):
  lines = ['{"step": 1, "split": "train", "loss": 3.0}', '{"step": 2, "split": "eval", "loss": 2.0}',
           '{"step": 3, "split": "train", "loss": 1.0}', '{"step": 4, "spl']  # torn by a kill
  (tmp_path / "metrics.jsonl").write_text("\n".join(lines))
  assert writers.drop_after(tmp_path, 2) == 2
  assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]
  assert writers.drop_after(tmp_path, 2) == 0
