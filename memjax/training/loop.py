"""The training loop, in big_vision-style sections: workdir, data, mesh, objectives, state, loop.

`run(cfg, workdir)` trains (or resumes) any memjax task and returns the final evaluation. It checks
everything it can (config, data, workdir, checkpoints) before it writes a single file.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from etils import epath
from flax import nnx
from tqdm.auto import tqdm

from memjax import config as mc
from memjax import data as data_lib
from memjax import fs, models
from memjax.metrics import information
from memjax.objectives import Objective, curriculum, lookup
from memjax.training import (checkpoint, encoders, memory_report, optim, preemption, pretrained,
                             sharding, steps, validation, warm_start)
from memjax.training.state import TrainState, split_frozen, split_model
from memjax.training.writers import MetricWriter, drop_after

RESULTS_JSON = "results.json"
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# Config keys a resumed run may change: how long, how often and where, never what is trained
# (scan_layers and attention: how layers and attention are computed, e.g. on another platform).
RESUMABLE_KEYS = ("train.steps", "train.log_every", "train.eval_every", "train.eval_batches",
                  "train.checkpoint_every", "train.keep_checkpoints", "train.async_checkpoints",
                  "train.progress", "data.cache_dir", "mesh.", "scan_layers", "attention")


# ------------------------------------------------------------------------------ workdir checks


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat |= _flatten(value, f"{prefix}{key}.")
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _defaults() -> dict[str, Any]:
  """The sections memjax.config builds for every task, at their defaults, flattened."""
  size = mc.SIZES["tiny"]
  return _flatten({"train": mc.train(size).to_dict(), "objective": mc.objective("clm").to_dict(),
                   "data": mc.data(size, "tiny").to_dict(), "init": "memjax",
                   "encoder": mc.encoder(size, "mixer").to_dict(),
                   "decoder": mc.decoder(size, "mixer").to_dict()})


def added_at_default(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """Keys the saved config lacks (options added to memjax after it was written) that hold their
  default in the current one: the run behaves as it did, so they are no difference."""
  a, b, defaults = _flatten(saved), _flatten(current), _defaults()
  return sorted(key for key in set(b) - set(a) if key in defaults and defaults[key] == b[key])


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """Keys whose values differ between two configs, except those a resumed run may change and
  options added later that hold their default."""
  a, b = _flatten(saved), _flatten(current)
  added = set(added_at_default(saved, current))
  return [f"{key}: workdir has {a.get(key)!r}, config has {b.get(key)!r}"
          for key in sorted(set(a) | set(b))
          if a.get(key) != b.get(key) and key not in added and not any(s in key for s in RESUMABLE_KEYS)]


def check_workdir(workdir: epath.Path, cfg: ml_collections.ConfigDict) -> None:
  """Refuses a workdir that holds a different run (nothing is written or deleted)."""
  saved = workdir / encoders.CONFIG_JSON
  if saved.exists():
    differences = config_differences(json.loads(saved.read_text()), json.loads(cfg.to_json_best_effort()))
    if differences:
      raise ValueError(f"workdir {workdir} holds a run with a different config; use a new workdir "
                       "or the same config:\n  " + "\n  ".join(differences))
  elif (workdir / encoders.CHECKPOINTS).exists() and any((workdir / encoders.CHECKPOINTS).iterdir()):
    raise ValueError(f"workdir {workdir} holds checkpoints but no {encoders.CONFIG_JSON}; "
                     "refusing to resume a run of unknown config")


# ------------------------------------------------------------------------------ state


def frozen_subtrees(cfg: ml_collections.ConfigDict) -> tuple[str, ...]:
  """Parameter paths kept frozen: 'encoder/embed' and/or 'encoder/stack' (encoder.frozen_scope)."""
  return tuple(f"encoder/{part}" for part in encoders.frozen_parts(cfg)) if "encoder" in cfg else ()


def _init_state(cfg: ml_collections.ConfigDict, tx) -> TrainState:
  _, params = split_model(models.build_model(cfg, nnx.Rngs(cfg.seed)))
  trainable, frozen = pretrained.adapters_only(*split_frozen(params, frozen_subtrees(cfg)), cfg)
  return TrainState(step=jnp.zeros((), jnp.int32), params=trainable, opt_state=tx.init(trainable),
                    rng=jax.random.PRNGKey(cfg.seed), frozen=frozen)


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
      extra[term + "entropy_proportion"] = information.entropy_proportion(value, vocab_size)
      extra[term + "bits_per_byte"] = information.bits_per_byte(value, bytes_per_token)
  return metrics | extra


# ------------------------------------------------------------------------------ the run


def given_objectives(objectives: Any) -> dict[str, Any]:
  """name -> Objective (or factory) from None, one Objective, a sequence of them, or a mapping."""
  if objectives is None:
    return {}
  if isinstance(objectives, Mapping):
    return dict(objectives)
  if isinstance(objectives, Objective):
    return {objectives.name: objectives}
  if isinstance(objectives, (list, tuple)) and all(isinstance(o, Objective) for o in objectives):
    return {o.name: o for o in objectives}
  raise ValueError("objectives must be an Objective, a list of them, or a mapping of names to "
                   f"Objectives or functions (cfg, special) -> Objective; got {type(objectives).__name__}")


class Trainer:
  """Everything a step needs, built (and checked) from the config: data, mesh, objectives, steps."""

  def __init__(self, cfg: ml_collections.ConfigDict, objectives: Any = None,
               devices: list[jax.Device] | None = None):
    validation.check(cfg)
    self.cfg = cfg
    # Data and mesh (over `devices`, by default all of them).
    self.data = data_lib.prepare(cfg.data)
    self.mesh = sharding.make_mesh(cfg.mesh, devices)
    batch_shards = self.mesh.shape["data"] * self.mesh.shape["fsdp"]
    if cfg.train.batch_size % batch_shards:
      raise ValueError(f"train.batch_size={cfg.train.batch_size} is not divisible by the "
                       f"{batch_shards} data x fsdp shards of the mesh")
    self.rows = sharding.process_rows(self.mesh, cfg.train.batch_size)  # this process's share
    self.train_batches = iter(data_lib.batches(
        self.data, cfg.data, split="train", batch_size=cfg.train.batch_size, seed=cfg.seed,
        rows=self.rows))
    # Objectives and optimizers (one per stage when stages restart like fresh runs).
    self.stages = curriculum.parse(cfg.objective.stages, cfg.train.steps)
    special = self.data.special
    special = dataclasses.replace(
        special, blank=cfg.objective.blank_id if cfg.objective.blank_id >= 0 else special.blank,
        sep=cfg.objective.copy_delimiter_id if cfg.objective.copy_delimiter_id >= 0 else special.sep)
    self.objectives = lookup.resolve_all([s.objective for s in self.stages], cfg, special=special,
                                         given=given_objectives(objectives))
    self.restart_stages = bool(cfg.objective.get("restart_stages", False))
    for stage in self.stages if self.restart_stages else ():
      optim.schedule(cfg.train, stage.steps)  # refuse a stage shorter than its warmup now
    self.tx = optim.optimizer(cfg.train, self.stages[0].steps if self.restart_stages else None)
    self.learning_rate = optim.schedule(cfg.train)
    if cfg.train.compute_dtype not in COMPUTE_DTYPES:
      raise ValueError(f"train.compute_dtype must be one of {tuple(COMPUTE_DTYPES)}")
    self.compute_dtype = COMPUTE_DTYPES[cfg.train.compute_dtype]
    # Model structure and state layout.
    self.graphdef, _ = split_model(nnx.eval_shape(lambda: models.build_model(cfg, nnx.Rngs(0))))
    self.abstract_state = jax.eval_shape(self._init)
    self.shardings = sharding.tree_shardings(self.abstract_state, self.mesh)
    self._train_steps: dict[Any, steps.TrainStep] = {}
    self._eval_steps: dict[str, steps.EvalStep] = {}

  def _init(self) -> TrainState:
    return _init_state(self.cfg, self.tx)

  def init_state(self) -> TrainState:
    """A fresh state, created directly with its shardings; a pretrained encoder (encoder.checkpoint)
    or decoder (decoder.checkpoint) is restored from its checkpoint instead of initialized, and
    `train.init_from` warm-starts the parameters from another run."""
    abstract = checkpoint.abstract(self.abstract_state, self.shardings)
    state = pretrained.init_state(self._init, abstract, self.cfg, self.data.tokenizer_digest)
    if self.cfg.train.get("init_from"):
      target = checkpoint.abstract(state.params, self.shardings.params)
      state = state.replace(params=warm_start.load(self.cfg.train.init_from, state.params, target,
                                                   self.data.tokenizer_digest))
    return state

  def stage_optimizer(self, stage: curriculum.Stage) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The stage's optimizer and learning rate (of the step): the run's, or the stage's own."""
    if not self.restart_stages:
      return self.tx, self.learning_rate
    lr = optim.schedule(self.cfg.train, stage.steps)
    return optim.optimizer(self.cfg.train, stage.steps), lambda step: lr(step - stage.start)

  def train_step(self, stage: curriculum.Stage | str) -> steps.TrainStep:
    """The jitted train step of one stage (or of the first stage of an objective), compiled on first use."""
    if isinstance(stage, str):
      stage = next(s for s in self.stages if s.objective == stage)
    key = stage if self.restart_stages else stage.objective
    if key not in self._train_steps:
      tx, learning_rate = self.stage_optimizer(stage)
      step = steps.make_train_step(self.graphdef, self.objectives[stage.objective], tx,
                                   learning_rate, self.compute_dtype)
      self._train_steps[key] = steps.jit_train_step(step, self.shardings, self.mesh)
    return self._train_steps[key]

  def restart_optimizer(self, state: TrainState, stage: curriculum.Stage) -> TrainState:
    """The state with a fresh optimizer state for `stage` (its first step, as a chained run)."""
    init = jax.jit(self.stage_optimizer(stage)[0].init, out_shardings=self.shardings.opt_state)
    return state.replace(opt_state=init(state.params))

  def next_batch(self) -> dict[str, jax.Array]:
    return sharding.global_batch(next(self.train_batches), self.mesh)

  def evaluate(self, state: TrainState) -> dict[str, float]:
    """Every objective of the run on (up to) `train.eval_batches` held-out batches."""
    cfg, results = self.cfg, {}
    for objective in self.objectives.values():
      name = objective.name
      if name not in self._eval_steps:
        step = steps.make_eval_step(self.graphdef, objective, self.compute_dtype)
        self._eval_steps[name] = steps.jit_eval_step(step, self.shardings, self.mesh)
      batches = data_lib.batches(self.data, cfg.data, split="eval", batch_size=cfg.train.batch_size,
                                 rows=self.rows)
      metrics = [jax.device_get(self._eval_steps[name](state, sharding.global_batch(b, self.mesh)))
                 for b, _ in zip(batches, range(cfg.train.eval_batches))]
      metrics = with_information(aggregate(metrics), cfg.data.vocab_size, self.data.eval.bytes_per_token)
      prefix = f"{name}/" if len(self.objectives) > 1 else ""
      results |= {prefix + key: value for key, value in metrics.items()}
    return results


class Run:
  """One training run in a workdir: checked and restored (or initialized) in `__init__`."""

  def __init__(self, cfg: ml_collections.ConfigDict, workdir: str, objectives: Any = None):
    self.cfg = cfg
    self.workdir = fs.path(workdir)
    check_workdir(self.workdir, cfg)
    self.trainer = trainer = Trainer(cfg, objectives)
    self.checkpoints = checkpoint.manager(self.workdir / encoders.CHECKPOINTS,
                                          every=cfg.train.checkpoint_every,
                                          keep=cfg.train.keep_checkpoints,
                                          async_save=cfg.train.async_checkpoints)
    latest = self.checkpoints.latest_step()
    if latest is None:
      self.state = trainer.init_state()
    else:
      target = checkpoint.abstract(trainer.abstract_state.to_dict(), trainer.shardings.to_dict())
      restored = checkpoint.restore(self.checkpoints, latest, target, trainer.train_batches)
      self.state = TrainState(**restored)

  def _write_run_files(self) -> None:
    if jax.process_index() == 0:
      self.workdir.mkdir(parents=True, exist_ok=True)
      (self.workdir / encoders.CONFIG_JSON).write_text(self.cfg.to_json_best_effort(indent=2))
      (self.workdir / encoders.TOKENIZER_JSON).write_text(self.trainer.data.tokenizer.to_str())

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
        if trainer.restart_stages and step == stage.start > 0:
          self.state = trainer.restart_optimizer(self.state, stage)
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
      (self.workdir / RESULTS_JSON).write_text(json.dumps(results, indent=2))
    return results

  def close(self) -> None:
    self.checkpoints.close()


def run(cfg: ml_collections.ConfigDict, workdir: str, objectives: Any = None) -> dict[str, Any]:
  """Trains (or resumes) the run configured by `cfg` in `workdir`; returns its final evaluation.

  `objectives`: user objectives the curriculum names (see `given_objectives`)."""
  training = Run(cfg, workdir, objectives)
  try:
    return training.train()
  finally:
    training.close()
