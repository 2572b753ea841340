"""From one encoder embedding to decoder inputs: compression, width bridge, repeat and unroll."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from memjax.models.init import torch_linear


def embedding_at(hidden_BxTxD: jax.Array, index: int) -> jax.Array:
  """The single embedding [B, D] at token `index` (-1: last token; -2 for causally trained encoders)."""
  return hidden_BxTxD[:, index]


class Bridge(nnx.Module):
  """Encoder width -> optional bottleneck (d_enc / compression) -> decoder width, all linear.

  It is the identity when there is neither compression nor a width change.
  """

  def __init__(self, d_encoder: int, d_decoder: int, *, compression: int = 1, rngs: nnx.Rngs):
    if compression < 1 or d_encoder % compression:
      raise ValueError(f"compression must divide the encoder width {d_encoder}, got {compression}")
    d_code = d_encoder // compression
    self.down = torch_linear(d_encoder, d_code, rngs) if compression > 1 else None
    self.up = torch_linear(d_code, d_decoder, rngs) if (compression > 1 or d_encoder != d_decoder) else None

  def __call__(self, embedding_BxE: jax.Array) -> jax.Array:
    if self.down is not None:
      embedding_BxE = self.down(embedding_BxE)
    return self.up(embedding_BxE) if self.up is not None else embedding_BxE


def repeat(embedding_BxD: jax.Array, length: int) -> jax.Array:
  """The same embedding at every one of `length` decoder positions: [B, length, D]."""
  return jnp.broadcast_to(embedding_BxD[:, None, :], (embedding_BxD.shape[0], length, embedding_BxD.shape[1]))


def unroll_windows(length: int, width: int) -> np.ndarray:
  """[length, width // 2] indices: position t reads e[(t mod width + j) mod width], j < width // 2."""
  starts = np.arange(length)[:, None] % width
  return (starts + np.arange(width // 2)[None, :]) % width


class Unroll(nnx.Module):
  """Sliding-window unrolling: a distinct wrapped half-width window of the embedding per position,
  through one shared Linear(d/2 -> d). Windows are all distinct when d >= length."""

  def __init__(self, width: int, *, rngs: nnx.Rngs):
    if width < 2:
      raise ValueError(f"unrolling needs a width of at least 2, got {width}")
    self.proj = torch_linear(width // 2, width, rngs)

  def __call__(self, embedding_BxD: jax.Array, length: int) -> jax.Array:
    windows_TxW = unroll_windows(length, embedding_BxD.shape[-1])
    return self.proj(embedding_BxD[:, windows_TxW])
