"""The training loop: a run's Program over its data, in its workdir, step by step.

`run(cfg, workdir)` trains (or resumes) any memjax task and returns the final evaluation. It checks
everything it can (config, data, workdir, checkpoints) before it writes a single file.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from memjax import data as data_lib
from memjax import fs
from memjax.metrics import entropy
from memjax.objectives import curriculum
from memjax.training import checkpoint, memory_report, preemption, sharding, steps, validation
from memjax.training import run_folder
from memjax.training.program import Program
from memjax.training.state import TrainState
from memjax.training.writers import MetricWriter, drop_after


# ------------------------------------------------------------------------------ evaluation


def aggregate(batches: list[dict[str, float]]) -> dict[str, float]:
  """Means over batches; a term's loss and accuracy are weighted by its counts (tokens, or examples
  for terms that score whole sequences, such as retrieval)."""
  result = {}
  for key in batches[0]:
    values = np.array([b[key] for b in batches], np.float64)
    term = key.rpartition("/")[0]
    count = next((f"{term}/{c}" for c in ("tokens", "examples") if f"{term}/{c}" in batches[0]), None)
    if key.endswith(("/tokens", "/examples")):
      result[key] = float(values.sum())
    elif key.endswith(("/loss", "/accuracy")) and count:
      weights = np.array([b[count] for b in batches], np.float64)
      result[key] = float((values * weights).sum() / max(weights.sum(), 1.0))
    else:
      result[key] = float(values.mean())
  return result


def with_information(metrics: dict[str, float], vocab_size: int, bytes_per_token: float) -> dict[str, float]:
  """Adds each token-level term's entropy proportion I_e and bits per byte to its cross-entropy.

  A term is token-level when it reports `tokens` (as the built-in ones do); others (a regularizer,
  retrieval over documents) get neither.
  """
  extra = {}
  for key, value in metrics.items():
    if key.endswith("/loss"):
      term = key[:-len("loss")]
      if f"{term}tokens" not in metrics:
        continue
      extra[term + "entropy_proportion"] = entropy.entropy_proportion(value, vocab_size)
      extra[term + "bits_per_byte"] = entropy.bits_per_byte(value, bytes_per_token)
  return metrics | extra


# ------------------------------------------------------------------------------ the run


class Trainer:
  """A run's Program (memjax/training/program.py) over its data: batches, initial state, evaluation."""

  def __init__(self, cfg: ml_collections.ConfigDict, objectives: Any = None,
               devices: list[jax.Device] | None = None):
    validation.check(cfg)  # before the data are prepared (a tokenizer may be trained)
    self.cfg = cfg
    self.data = data_lib.prepare(cfg.data)
    self.program = Program(cfg, sharding.make_mesh(cfg.mesh, devices), special=self.data.special,
                           objectives=objectives)
    self.mesh, self.stages, self.shardings = self.program.mesh, self.program.stages, self.program.shardings
    self.rows = sharding.process_rows(self.mesh, cfg.train.batch_size)  # this process's share
    self.train_batches = iter(data_lib.batches(
        self.data, cfg.data, split="train", batch_size=cfg.train.batch_size, seed=cfg.seed,
        rows=self.rows))

  def init_state(self) -> TrainState:
    return self.program.init_state(self.data.tokenizer_digest)

  def train_step(self, stage: curriculum.Stage | str) -> steps.TrainStep:
    return self.program.train_step(stage)

  def next_batch(self) -> dict[str, jax.Array]:
    return sharding.global_batch(next(self.train_batches), self.mesh)

  def evaluate(self, state: TrainState) -> dict[str, float]:
    """Every objective of the run on (up to) `train.eval_batches` held-out batches."""
    cfg, results = self.cfg, {}
    for key, objective in self.program.objectives.items():  # keyed by stage name, named by itself
      step = self.program.eval_step(key)
      batches = data_lib.batches(self.data, cfg.data, split="eval", batch_size=cfg.train.batch_size,
                                 rows=self.rows)
      metrics = [jax.device_get(step(state, sharding.global_batch(b, self.mesh)))
                 for b, _ in zip(batches, range(cfg.train.eval_batches))]
      metrics = with_information(aggregate(metrics), cfg.data.vocab_size, self.data.eval.bytes_per_token)
      prefix = f"{objective.name}/" if len(self.program.objectives) > 1 else ""
      results |= {prefix + key: value for key, value in metrics.items()}
    return results


class Run:
  """One training run in a workdir: checked and restored (or initialized) in `__init__`."""

  def __init__(self, cfg: ml_collections.ConfigDict, workdir: str, objectives: Any = None):
    self.cfg = cfg
    self.workdir = fs.path(workdir)
    run_folder.check(self.workdir, cfg)
    self.trainer = trainer = Trainer(cfg, objectives)
    self.checkpoints = checkpoint.manager(self.workdir / run_folder.CHECKPOINTS,
                                          every=cfg.train.checkpoint_every,
                                          keep=cfg.train.keep_checkpoints,
                                          async_save=cfg.train.async_checkpoints)
    latest = self.checkpoints.latest_step()
    if latest is None:
      self.state = trainer.init_state()
    else:
      self.state = trainer.program.restore(self.checkpoints, latest, trainer.train_batches)

  def _write_run_files(self) -> None:
    if jax.process_index() == 0:
      self.workdir.mkdir(parents=True, exist_ok=True)
      (self.workdir / run_folder.CONFIG_JSON).write_text(self.cfg.to_json_best_effort(indent=2))
      (self.workdir / run_folder.TOKENIZER_JSON).write_text(self.trainer.data.tokenizer.to_str())

  def _report_memory(self, step: steps.TrainStep, batch: dict[str, jax.Array]) -> None:
    if jax.process_index() == 0:  # the compilation is reused by the step's first call
      print(memory_report.report(self.state, self.trainer.shardings, self.trainer.mesh,
                                 step.lower(self.state, batch).compile()), flush=True)

  def train(self, until: int | None = None) -> dict[str, Any]:
    """Trains to `train.steps` (or only to step `until`, checkpointing there, as a preemption would).

    On SIGTERM (see memjax/training/preemption.py) it saves a checkpoint and raises `Preempted`.
    """
    cfg, trainer = self.cfg, self.trainer
    start, total = int(self.state.step), cfg.train.steps
    self._write_run_files()
    drop_after(self.workdir, start)  # records of steps this run will train again
    writer = MetricWriter(self.workdir)
    watch = preemption.Watch(self.checkpoints)
    stop = total if until is None else min(until, total)
    tokens_per_step = cfg.train.batch_size * cfg.data.n_ctx
    progress = tqdm(total=total, initial=start, desc=f"{cfg.task} {self.workdir.name}", unit="step",
                    disable=not cfg.train.progress or jax.process_index() > 0)
    clock, clock_step, train_metrics, eval_metrics = time.perf_counter(), start, {}, {}
    try:
      for step in range(start, stop):
        stage = curriculum.stage_at(trainer.stages, step)
        if trainer.program.restart_stages and step == stage.start > 0:
          self.state = trainer.program.restart_optimizer(self.state, stage)
        train_step, batch = trainer.train_step(stage), trainer.next_batch()
        if step == start:
          self._report_memory(train_step, batch)
        self.state, metrics = train_step(self.state, batch)
        done = step + 1
        progress.update(1)
        if done % cfg.train.log_every == 0 or done == total:
          train_metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
          if not np.isfinite(train_metrics["loss"]):
            raise FloatingPointError(f"loss is {train_metrics['loss']} at step {done}")
          now = time.perf_counter()
          train_metrics["tokens_per_s"] = tokens_per_step * (done - clock_step) / (now - clock)
          clock, clock_step = now, done
          writer.write(done, "train", train_metrics | {"stage": trainer.stages.index(stage)})
          progress.set_postfix(loss=f"{train_metrics['loss']:.3f}",
                               tok_s=f"{train_metrics['tokens_per_s']:.0f}", stage=stage.objective)
        if done % cfg.train.eval_every == 0 or done == total:
          eval_metrics = trainer.evaluate(self.state)
          writer.write(done, "eval", eval_metrics)
        preempted = watch.reached(done)
        checkpoint.save(self.checkpoints, done, self.state.to_dict(), trainer.train_batches,
                        force=done == stop or preempted)
        if preempted and done < stop:
          raise preemption.Preempted(done)
    except KeyboardInterrupt:  # a multi-process run turns Ctrl-C into a preemption (preemption.py)
      if jax.process_count() == 1:  # a save on one process alone would wait for the others
        checkpoint.save(self.checkpoints, int(self.state.step), self.state.to_dict(),
                        trainer.train_batches, force=True)
      raise
    finally:
      watch.close()
      self.checkpoints.wait_until_finished()
      progress.close()
      writer.close()
    if not eval_metrics:  # resumed at the end: evaluate the restored state
      eval_metrics = trainer.evaluate(self.state)
    results = {"step": int(self.state.step), "eval": eval_metrics, "train": train_metrics,
               "bytes_per_token": trainer.data.eval.bytes_per_token}
    if jax.process_index() == 0:
      (self.workdir / run_folder.RESULTS_JSON).write_text(json.dumps(results, indent=2))
    return results

  def close(self) -> None:
    self.checkpoints.close()


def run(cfg: ml_collections.ConfigDict, workdir: str, objectives: Any = None) -> dict[str, Any]:
  """Trains (or resumes) the run configured by `cfg` in `workdir`; returns its final evaluation.

  `objectives`: user objectives the curriculum names (see `program.given_objectives`)."""
  training = Run(cfg, workdir, objectives)
  try:
    return training.train()
  finally:
    training.close()
