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


def _loss_fn(graphdef: nnx.GraphDef, objective: Objective, compute_dtype: jnp.dtype):
  def loss(params: Params, frozen: Params, batch: Batch, step: jax.Array,
           rng: jax.Array) -> tuple[jax.Array, Metrics]:
    model = nnx.merge(graphdef, cast_floats(merge_trees(params, frozen), compute_dtype))
    return objective(model, batch, step, rng)
  return loss


def make_train_step(graphdef: nnx.GraphDef, objective: Objective, tx: optax.GradientTransformation,
                    learning_rate: optax.Schedule, compute_dtype: jnp.dtype = jnp.float32) -> TrainStep:
  loss = _loss_fn(graphdef, objective, compute_dtype)

  def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
    rng, step_rng = jax.random.split(state.rng)  # step_rng: the objective's randomness (batch['rng'])
    (_, metrics), grads = jax.value_and_grad(loss, has_aux=True)(state.params, state.frozen, batch,
                                                                 state.step, step_rng)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics |= {"grad_norm": optax.tree.norm(grads), "lr": learning_rate(state.step)}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state, rng=rng), metrics

  return train_step


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
