"""The oracle memory model (paper §5.4): the encoder embeds the very sequence the decoder predicts.

The decoder sees [m, tokens], where m is the embedding of the whole (past and future) sequence, so
its loss is an upper bound on what memories can contribute, not a language model.
"""

from __future__ import annotations

import jax
from flax import nnx

from memjax.models.bridge import Bridge, embedding_at
from memjax.models.config import StackConfig
from memjax.models.memory import decode_after_prefix
from memjax.models.stack import Tower, lm_head


class OracleMemoryModel(nnx.Module):
  """tokens [B, T] -> {'logits' [B, T, V] (position t predicts token t+1), 'memories' [B, 1, D]}."""

  def __init__(self, encoder: StackConfig, decoder: StackConfig, *, embed_index: int = -1,
               compression: int = 1, init_convention: str = "memjax", rngs: nnx.Rngs):
    self.encoder = Tower(encoder, init_convention=init_convention, rngs=rngs)
    self.bridge = Bridge(encoder.d_model, decoder.d_model, compression=compression, rngs=rngs)
    self.decoder = Tower(decoder, init_convention=init_convention, rngs=rngs)
    self.head = lm_head(decoder, rngs, init_convention)
    self.embed_index = embed_index

  def __call__(self, tokens_BxT: jax.Array, mask_BxT: jax.Array | None = None) -> dict[str, jax.Array]:
    memory_Bx1xD = self.bridge(embedding_at(self.encoder(tokens_BxT, mask_BxT), self.embed_index))[:, None]
    logits_BxTxV, _ = decode_after_prefix(self.decoder, self.head, memory_Bx1xD, tokens_BxT, mask_BxT)
    return {"logits": logits_BxTxV, "memories": memory_Bx1xD}
