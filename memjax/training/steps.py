"""Jitted train and eval steps: pure functions of (TrainState, batch) with explicit shardings.

The model is rebuilt inside the step from its static graphdef and the state's parameters
(`nnx.merge`), so no mutable module crosses the jit boundary. Frozen parameters are an input of the
loss but not an argument of `jax.value_and_grad`: their gradients are never computed.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from memjax.objectives import Objective
from memjax.objectives.terms import Batch, Metrics
from memjax.training.sharding import batch_sharding, replicated
from memjax.training.state import Params, TrainState, cast_floats, merge_trees

TrainStep = Callable[[TrainState, Batch], tuple[TrainState, Metrics]]
EvalStep = Callable[[TrainState, Batch], Metrics]


def _loss_fn(graphdef: nnx.GraphDef, objective: Objective, compute_dtype: jnp.dtype,
             training: bool = False):
  def loss(params: Params, frozen: Params, batch: Batch, step: jax.Array,
           rng: jax.Array) -> tuple[jax.Array, Metrics]:
    model = nnx.merge(graphdef, cast_floats(merge_trees(params, frozen), compute_dtype))
    if training:  # modules with a train-time behaviour (memory quantisation noise) switch it on
      model.train()
    return objective(model, batch, step, rng)
  return loss


def make_train_step(graphdef: nnx.GraphDef, objective: Objective, tx: optax.GradientTransformation,
                    learning_rate: optax.Schedule, compute_dtype: jnp.dtype = jnp.float32,
                    microbatches: int = 1) -> TrainStep:
  """One optimizer step; with `microbatches` > 1 the gradient is accumulated over that many slices
  of the batch (activations of one slice alive at a time), then applied once."""
  grad_fn = jax.value_and_grad(_loss_fn(graphdef, objective, compute_dtype, training=True), has_aux=True)

  def gradients(state: TrainState, batch: Batch, rng: jax.Array) -> tuple[Params, Metrics]:
    if microbatches == 1:
      (_, metrics), grads = grad_fn(state.params, state.frozen, batch, state.step, rng)
      return grads, metrics

    def accumulate(grads: Params, sliced: tuple[jax.Array, Batch]) -> tuple[Params, Metrics]:
      index, micro = sliced
      (_, metrics), micro_grads = grad_fn(state.params, state.frozen, micro, state.step,
                                          jax.random.fold_in(rng, index))
      return jax.tree.map(jnp.add, grads, micro_grads), metrics

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    grads, metrics_M = jax.lax.scan(accumulate, zeros,
                                    (jnp.arange(microbatches), split_microbatches(batch, microbatches)))
    return jax.tree.map(lambda g: g / microbatches, grads), combine_microbatches(metrics_M)

  def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
    rng, step_rng = jax.random.split(state.rng)  # step_rng: the objective's randomness (batch['rng'])
    grads, metrics = gradients(state, batch, step_rng)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics |= {"grad_norm": optax.tree.norm(grads), "lr": learning_rate(state.step)}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state, rng=rng), metrics

  return train_step


def split_microbatches(batch: Batch, microbatches: int) -> Batch:
  """[B, ...] -> [M, B/M, ...], microbatch m holding rows m, m + M, m + 2M, ...: each data shard's
  contiguous rows then split locally, every microbatch keeping its share on every shard."""
  def split(x: jax.Array) -> jax.Array:
    return x.reshape(x.shape[0] // microbatches, microbatches, *x.shape[1:]).swapaxes(0, 1)
  return jax.tree.map(split, batch)


def combine_microbatches(metrics_M: Metrics) -> Metrics:
  """The batch's metrics from its microbatches' [M] metrics, as `loop.aggregate` combines eval
  batches: counts summed, a term's loss and accuracy weighted by its counts, the rest averaged."""
  combined = {}
  for key, values in metrics_M.items():
    term = key.rpartition("/")[0]
    count = next((metrics_M[f"{term}/{c}"] for c in ("tokens", "examples") if f"{term}/{c}" in metrics_M), None)
    if key.endswith(("/tokens", "/examples")):
      combined[key] = values.sum()
    elif key.endswith(("/loss", "/accuracy")) and count is not None:
      combined[key] = (values * count).sum() / jnp.maximum(count.sum(), 1.0)
    else:
      combined[key] = values.mean()
  return combined


def make_eval_step(graphdef: nnx.GraphDef, objective: Objective,
                   compute_dtype: jnp.dtype = jnp.float32) -> EvalStep:
  loss = _loss_fn(graphdef, objective, compute_dtype)

  def eval_step(state: TrainState, batch: Batch) -> Metrics:
    # A key of the batch's content: a random objective sees other draws on each held-out batch but
    # the same ones at every evaluation, so eval curves compare like with like.
    rng = jax.random.fold_in(jax.random.PRNGKey(0), jnp.sum(batch["tokens"], dtype=jnp.uint32))
    return loss(state.params, state.frozen, batch, state.step, rng)[1]

  return eval_step


def in_mesh(fn: Callable, mesh: Mesh) -> Callable:
  """`fn` traced with `mesh` as the context's (abstract) mesh, so that kernels which shard_map over
  it (memjax.kernels.splash) find it whatever shardings the inputs carry."""
  def traced(*args):
    with jax.sharding.use_abstract_mesh(mesh.abstract_mesh):
      return fn(*args)
  return traced


def jit_train_step(step: TrainStep, state_shardings: TrainState, mesh: Mesh) -> TrainStep:
  """Compiled with the state's shardings in and out, the batch over data x fsdp, the state donated."""
  return jax.jit(in_mesh(step, mesh), in_shardings=(state_shardings, batch_sharding(mesh)),
                 out_shardings=(state_shardings, replicated(mesh)), donate_argnums=0)


def jit_eval_step(step: EvalStep, state_shardings: TrainState, mesh: Mesh) -> EvalStep:
  return jax.jit(in_mesh(step, mesh), in_shardings=(state_shardings, batch_sharding(mesh)),
                 out_shardings=replicated(mesh))
