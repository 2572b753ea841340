"""The training state: one pytree of arrays that every jitted step takes and returns.

`params` are trained; `frozen` (e.g. a reused encoder) enters the forward pass but gets no
gradient and no optimizer state. `rng` is split every step and checkpointed with the rest, so a
stochastic objective resumes exactly. The model's structure (its NNX graphdef) is static and lives
outside the state.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

Params = dict[str, Any]


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Params
  opt_state: optax.OptState
  rng: jax.Array
  frozen: Params

  def to_dict(self) -> dict[str, Any]:
    """The fields as a plain dict (the layout of the checkpoint's 'state' item)."""
    return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def merge_trees(*trees: Params) -> Params:
  """Deep-merges nested dicts with disjoint leaves (trainable and frozen parameters)."""
  merged: Params = {}
  for tree in trees:
    for key, value in tree.items():
      if isinstance(value, dict) and isinstance(merged.get(key), dict):
        merged[key] = merge_trees(merged[key], value)
      elif key in merged:
        raise ValueError(f"parameter {key!r} is both trainable and frozen")
      else:
        merged[key] = value
  return merged


def split_frozen(params: Params, frozen_paths: tuple[str, ...]) -> tuple[Params, Params]:
  """(trainable, frozen): the subtrees at `frozen_paths` ('encoder', or nested: 'encoder/stack')
  are frozen, the rest is trainable; both keep the nesting of `params`."""
  trainable, frozen = {}, {}
  for key, value in params.items():
    inner = tuple(p.partition("/")[2] for p in frozen_paths if p.startswith(key + "/"))
    if key in frozen_paths:
      frozen[key] = value
    elif inner and isinstance(value, dict):
      trainable_part, frozen_part = split_frozen(value, inner)
      trainable |= {key: trainable_part} if trainable_part else {}
      frozen |= {key: frozen_part} if frozen_part else {}
    else:
      trainable[key] = value
  return trainable, frozen


def cast_floats(tree: Params, dtype: jnp.dtype) -> Params:
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def split_model(model: nnx.Module) -> tuple[nnx.GraphDef, Params]:
  """(graphdef, parameters as a pure dict). memjax models hold parameters only (no dropout or batch
  statistics), so this split is exhaustive: `nnx.split` raises if a model holds anything else."""
  graphdef, params = nnx.split(model, nnx.Param)
  return graphdef, nnx.to_pure_dict(params)
