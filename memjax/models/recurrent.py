"""Recurrent memory baseline (RMT-style, Bulatov et al. 2022), trained by backpropagation through time.

One memory embedding is carried between chunks: chunk c is decoded as [m_c, tokens_c] and m_{c+1} is
the decoder's hidden state at the chunk's last position. Unlike the parallel memory model, the chunks
must be processed one after another.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from memjax.models.config import StackConfig
from memjax.models.memory import decode_after_prefix
from memjax.models.stack import Tower, lm_head


class RecurrentMemoryModel(nnx.Module):
  """tokens [B, K*L] -> {'logits' [B, K*L, V] (position t predicts token t+1), 'memories' [B, K, D]}."""

  def __init__(self, decoder: StackConfig, *, chunks: int, pad_value: float = 1.0,
               init_convention: str = "memjax", rngs: nnx.Rngs):
    self.decoder = Tower(decoder, init_convention=init_convention, rngs=rngs)
    self.head = lm_head(decoder, rngs, init_convention)
    self.chunks, self.pad_value, self.d_model = chunks, pad_value, decoder.d_model

  def __call__(self, tokens_BxN: jax.Array, mask_BxN: jax.Array | None = None) -> dict[str, jax.Array]:
    B, N = tokens_BxN.shape
    if N % self.chunks:
      raise ValueError(f"sequence length {N} is not divisible into {self.chunks} chunks")
    chunks_BxKxL = tokens_BxN.reshape(B, self.chunks, N // self.chunks)
    mask_BxKxL = None if mask_BxN is None else mask_BxN.reshape(chunks_BxKxL.shape)
    memory_BxD = jnp.full((B, self.d_model), self.pad_value, jnp.float32)
    logits, memories = [], []
    for c in range(self.chunks):
      memories.append(memory_BxD)
      chunk_logits, hidden_BxPxD = decode_after_prefix(self.decoder, self.head, memory_BxD[:, None],
                                                       chunks_BxKxL[:, c],
                                                       None if mask_BxKxL is None else mask_BxKxL[:, c])
      logits.append(chunk_logits)
      memory_BxD = hidden_BxPxD[:, -1]
    return {"logits": jnp.concatenate(logits, axis=1), "memories": jnp.stack(memories, axis=1)}
