"""A run's computation without its data: model structure, state layout, shardings, objectives, steps.

`Program(cfg, mesh)` is everything a config compiles to: the model's graphdef, the abstract train
state and its shardings on `mesh`, the curriculum's stages and resolved objectives, their optimizers,
and the jitted train and eval steps. It reads no data and initializes nothing until asked, so the
same object trains (memjax/training/loop.py), sizes a run on virtual devices (experiments/dryrun.py),
compiles it ahead of time for a TPU topology (memjax/aot.py) and evaluates a finished run
(experiments/suite.py): what is sized and compiled is exactly what trains.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import Mesh

from memjax import data as data_lib
from memjax import models
from memjax.objectives import Objective, curriculum, lookup
from memjax.training import checkpoint, encoders, optim, pretrained, sharding, steps, validation, warm_start
from memjax.training.state import TrainState, split_frozen, split_model

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


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


def frozen_subtrees(cfg: ml_collections.ConfigDict) -> tuple[str, ...]:
  """Parameter paths kept frozen: 'encoder/embed' and/or 'encoder/stack' (encoder.frozen_scope)."""
  return tuple(f"encoder/{part}" for part in encoders.frozen_parts(cfg)) if "encoder" in cfg else ()


def special_ids(cfg: ml_collections.ConfigDict, tokenizer: data_lib.SpecialIds | None) -> data_lib.SpecialIds:
  """The ids the objectives use: the tokenizer's (memjax's own BPE's without one; ids change no
  shape or FLOP), with `objective.blank_id` / `objective.copy_delimiter_id` overriding them."""
  special = tokenizer or data_lib.OWN_SPECIAL_IDS
  return dataclasses.replace(
      special, blank=cfg.objective.blank_id if cfg.objective.blank_id >= 0 else special.blank,
      sep=cfg.objective.copy_delimiter_id if cfg.objective.copy_delimiter_id >= 0 else special.sep)


class Program:
  """The data-free computation of a run on `mesh` (see the module docstring)."""

  def __init__(self, cfg: ml_collections.ConfigDict, mesh: Mesh, *,
               special: data_lib.SpecialIds | None = None, objectives: Any = None):
    validation.check(cfg)
    self.cfg, self.mesh = cfg, mesh
    batch_shards = mesh.shape["data"] * mesh.shape["fsdp"]
    if cfg.train.batch_size % batch_shards:
      raise ValueError(f"train.batch_size={cfg.train.batch_size} is not divisible by the "
                       f"{batch_shards} data x fsdp shards of the mesh")
    self.microbatches = int(cfg.train.get("microbatches", 1))
    if (cfg.train.batch_size // batch_shards) % self.microbatches:
      raise ValueError(f"train.microbatches={self.microbatches} does not divide the "
                       f"{cfg.train.batch_size // batch_shards} sequences each data x fsdp shard holds")
    if cfg.train.compute_dtype not in COMPUTE_DTYPES:
      raise ValueError(f"train.compute_dtype must be one of {tuple(COMPUTE_DTYPES)}")
    self.compute_dtype = COMPUTE_DTYPES[cfg.train.compute_dtype]
    # Objectives and optimizers (one per stage when stages restart like fresh runs).
    self.stages = curriculum.parse(cfg.objective.stages, cfg.train.steps)
    self.special = special_ids(cfg, special)
    self.objectives = lookup.resolve_all([s.objective for s in self.stages], cfg, special=self.special,
                                         given=given_objectives(objectives))
    self.restart_stages = bool(cfg.objective.get("restart_stages", False))
    for stage in self.stages if self.restart_stages else ():
      optim.schedule(cfg.train, stage.steps)  # refuse a stage shorter than its warmup now
    self.tx = optim.optimizer(cfg.train, self.stages[0].steps if self.restart_stages else None)
    self.learning_rate = optim.schedule(cfg.train)
    # Model structure and state layout.
    self.graphdef, _ = split_model(nnx.eval_shape(lambda: models.build_model(cfg, nnx.Rngs(0))))
    self.abstract_state = jax.eval_shape(self._init)
    self.shardings = sharding.tree_shardings(self.abstract_state, mesh)
    self._train_steps: dict[Any, steps.TrainStep] = {}
    self._eval_steps: dict[str, steps.EvalStep] = {}

  # --------------------------------------------------------------------------- state

  def _init(self) -> TrainState:
    cfg = self.cfg
    _, params = split_model(models.build_model(cfg, nnx.Rngs(cfg.seed)))
    trainable, frozen = pretrained.adapters_only(*split_frozen(params, frozen_subtrees(cfg)), cfg)
    return TrainState(step=jnp.zeros((), jnp.int32), params=trainable, opt_state=self.tx.init(trainable),
                      rng=jax.random.PRNGKey(cfg.seed), frozen=frozen)

  def sharded_abstract_state(self) -> TrainState:
    """The state as ShapeDtypeStructs carrying their shardings (what a compile or restore targets)."""
    return checkpoint.abstract(self.abstract_state, self.shardings)

  def init_state(self, tokenizer_digest: str) -> TrainState:
    """A fresh state, created directly with its shardings; a pretrained encoder (encoder.checkpoint)
    or decoder (decoder.checkpoint) is restored from its checkpoint instead of initialized, and
    `train.init_from` warm-starts the parameters from another run. `tokenizer_digest` is the run's
    tokenizer, checked against theirs."""
    state = pretrained.init_state(self._init, self.sharded_abstract_state(), self.cfg, tokenizer_digest)
    if self.cfg.train.get("init_from"):
      target = checkpoint.abstract(state.params, self.shardings.params)
      state = state.replace(params=warm_start.load(self.cfg.train.init_from, state.params, target,
                                                   tokenizer_digest))
    return state

  def restore(self, mngr: Any, step: int, iterator: Any = None) -> TrainState:
    """The state saved at `step` by the checkpoint manager `mngr`, read into its shardings (and the
    data iterator's position into `iterator`, when given)."""
    target = checkpoint.abstract(self.abstract_state.to_dict(), self.shardings.to_dict())
    return TrainState(**checkpoint.restore(mngr, step, target, iterator))

  # --------------------------------------------------------------------------- steps

  def stage_optimizer(self, stage: curriculum.Stage) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The stage's optimizer and learning rate (of the step): the run's, or the stage's own."""
    if not self.restart_stages:
      return self.tx, self.learning_rate
    lr = optim.schedule(self.cfg.train, stage.steps)
    return optim.optimizer(self.cfg.train, stage.steps), lambda step: lr(step - stage.start)

  def stage(self, stage: curriculum.Stage | str) -> curriculum.Stage:
    """A stage, or the first stage training objective `stage`."""
    if isinstance(stage, str):
      return next(s for s in self.stages if s.objective == stage)
    return stage

  def train_step(self, stage: curriculum.Stage | str) -> steps.TrainStep:
    """The jitted train step of one stage (or of the first stage of an objective), built once."""
    stage = self.stage(stage)
    key = stage if self.restart_stages else stage.objective
    if key not in self._train_steps:
      tx, learning_rate = self.stage_optimizer(stage)
      step = steps.make_train_step(self.graphdef, self.objectives[stage.objective], tx, learning_rate,
                                   self.compute_dtype, microbatches=self.microbatches)
      self._train_steps[key] = steps.jit_train_step(step, self.shardings, self.mesh)
    return self._train_steps[key]

  def eval_step(self, objective: str) -> steps.EvalStep:
    """The jitted eval step of the objective a stage names (its key in `objectives`)."""
    if objective not in self._eval_steps:
      step = steps.make_eval_step(self.graphdef, self.objectives[objective], self.compute_dtype)
      self._eval_steps[objective] = steps.jit_eval_step(step, self.shardings, self.mesh)
    return self._eval_steps[objective]

  def restart_optimizer(self, state: TrainState, stage: curriculum.Stage) -> TrainState:
    """The state with a fresh optimizer state for `stage` (its first step, as a chained run)."""
    init = jax.jit(self.stage_optimizer(stage)[0].init, out_shardings=self.shardings.opt_state)
    return state.replace(opt_state=init(state.params))

  def distinct_stages(self) -> list[curriculum.Stage]:
    """The first stage of each objective: one per distinct train program (stages that restart their
    optimizer differ from another stage of their objective only in the schedule's constants)."""
    seen, distinct = set(), []
    for stage in self.stages:
      if stage.objective not in seen:
        seen.add(stage.objective)
        distinct.append(stage)
    return distinct

  def abstract_batch(self) -> dict[str, jax.ShapeDtypeStruct]:
    """A global training batch as ShapeDtypeStructs split over data x fsdp (for ahead-of-time lowering)."""
    shape, where = (self.cfg.train.batch_size, self.cfg.data.n_ctx), sharding.batch_sharding(self.mesh)
    return {"tokens": jax.ShapeDtypeStruct(shape, jnp.int32, sharding=where),
            "mask": jax.ShapeDtypeStruct(shape, jnp.float32, sharding=where)}

  def lower(self, stage: curriculum.Stage | str) -> jax.stages.Lowered:
    """The train step of `stage` lowered for the abstract state and batch: no data, no weights."""
    return self.train_step(stage).lower(self.sharded_abstract_state(), self.abstract_batch())


def parameter_count(tree: Any) -> int:
  return int(sum(x.size for x in jax.tree.leaves(tree)))
