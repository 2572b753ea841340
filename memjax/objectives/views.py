"""Batch views: pure functions from a data batch {'tokens' [B, T] int, 'mask' [B, T] float} to what a
model is trained on, {'inputs', 'targets', 'weights'}, all [B, T] (weight 0 = no target there)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from memjax.objectives.terms import Batch


def language_modelling(batch: Batch) -> dict[str, jax.Array]:
  """The text itself: the model reads the tokens and predicts (or regenerates) them."""
  return {"inputs": batch["tokens"], "targets": batch["tokens"], "weights": batch["mask"]}


def copy(batch: Batch, *, blank_id: int | None = None, delimiter_id: int = 0,
         delimiter_tokens: int = 0) -> dict[str, jax.Array]:
  """The copy task: [first half, first half]; only the copied half has targets.

  The second half of the text is dropped and the first half repeated in its place. With
  `blank_id`, the copied half's *inputs* are that constant token (blank copy), so only memories can
  carry what must be copied. With `delimiter_tokens=n`, the first n copied inputs become
  `delimiter_id` and their targets are masked.
  """
  tokens, mask = batch["tokens"], batch["mask"]
  length = tokens.shape[1]
  if length % 2:
    raise ValueError(f"the copy task needs an even sequence length, got {length}")
  half = length // 2
  first, first_mask = tokens[:, :half], mask[:, :half]
  copied_inputs = first if blank_id is None else jnp.full_like(first, blank_id)
  inputs = jnp.concatenate([first, copied_inputs], axis=1)
  targets = jnp.concatenate([first, first], axis=1)
  weights = jnp.concatenate([jnp.zeros_like(first_mask), first_mask], axis=1)
  if delimiter_tokens:
    delimiter = slice(half, half + delimiter_tokens)
    inputs = inputs.at[:, delimiter].set(delimiter_id)
    weights = weights.at[:, delimiter].set(0.0)
  return {"inputs": inputs, "targets": targets, "weights": weights}


def blank_copy(batch: Batch, *, blank_id: int, delimiter_id: int = 0,
               delimiter_tokens: int = 0) -> dict[str, jax.Array]:
  """The copy task with the copied half's inputs set to `blank_id`: only memories can carry it."""
  return copy(batch, blank_id=blank_id, delimiter_id=delimiter_id, delimiter_tokens=delimiter_tokens)
