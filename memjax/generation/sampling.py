"""Next-token sampling from logits: greedy, temperature, top-k and top-p (nucleus), seeded."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Sampling:
  """temperature 0 is greedy (argmax); top_k 0 and top_p 1 switch those filters off."""

  temperature: float = 0.0
  top_k: int = 0
  top_p: float = 1.0

  def __post_init__(self):
    if self.temperature < 0:
      raise ValueError(f"temperature must be >= 0 (0: greedy), got {self.temperature}")
    if self.top_k < 0:
      raise ValueError(f"top_k must be >= 0 (0: off), got {self.top_k}")
    if not 0 < self.top_p <= 1:
      raise ValueError(f"top_p must be in (0, 1] (1: off), got {self.top_p}")


def filtered_logits(logits_BxV: jax.Array, sampling: Sampling) -> jax.Array:
  """Tempered logits with -inf outside the top-k tokens and outside the top-p nucleus.

  The nucleus is the smallest set of most likely tokens whose probability reaches top_p (a token
  is kept when the mass of the tokens more likely than it is still below top_p).
  """
  logits_BxV = logits_BxV.astype(jnp.float32) / sampling.temperature
  if sampling.top_k:
    kth_Bx1 = jax.lax.top_k(logits_BxV, min(sampling.top_k, logits_BxV.shape[-1]))[0][:, -1:]
    logits_BxV = jnp.where(logits_BxV < kth_Bx1, -jnp.inf, logits_BxV)
  if sampling.top_p < 1:
    sorted_BxV = -jnp.sort(-logits_BxV, axis=-1)
    probs_BxV = jax.nn.softmax(sorted_BxV, axis=-1)
    before_BxV = jnp.cumsum(probs_BxV, axis=-1) - probs_BxV
    kept_BxV = jnp.where(before_BxV < sampling.top_p, sorted_BxV, jnp.inf)
    threshold_Bx1 = kept_BxV.min(axis=-1, keepdims=True)
    logits_BxV = jnp.where(logits_BxV < threshold_Bx1, -jnp.inf, logits_BxV)
  return logits_BxV


def sample(logits_BxV: jax.Array, key: jax.Array, sampling: Sampling) -> jax.Array:
  """One token id per row, [B] int32."""
  if sampling.temperature == 0:
    return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
  return jax.random.categorical(key, filtered_logits(logits_BxV, sampling), axis=-1).astype(jnp.int32)
