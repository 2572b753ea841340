"""Autoencoder: encoder -> one embedding -> decoder regenerating all tokens in one pass (no shift).

With a frozen encoder this is also the paper's information probe (Fig. 1): a fresh decoder learns to
regenerate the input from the encoder's single embedding; with `quantize` (memjax.models.quantize)
from that embedding as a memory model stores it (issue 21 §2: what survives quantisation).
"""

from __future__ import annotations

from typing import Literal

import jax
from flax import nnx

from memjax.models import quantize as quant
from memjax.models.bridge import Bridge, Unroll, embedding_at, repeat
from memjax.models.config import StackConfig
from memjax.models.stack import Stack, Tower, lm_head, logits_from

Feed = Literal["repeat", "unroll"]
FEEDS: tuple[str, ...] = ("repeat", "unroll")


class Autoencoder(nnx.Module):
  """tokens [B, T] -> {'logits' [B, T, V] (position t regenerates token t), 'embedding' [B, E]}."""

  def __init__(self, encoder: StackConfig, decoder: StackConfig, *, feed: Feed = "repeat",
               embed_index: int = -1, compression: int = 1, init_convention: str = "memjax",
               quantize: str = "none", rngs: nnx.Rngs):
    if feed not in FEEDS:
      raise ValueError(f"decoder feed must be one of {FEEDS}, got {feed!r}")
    self.encoder = Tower(encoder, init_convention=init_convention, rngs=rngs)
    self.bridge = Bridge(encoder.d_model, decoder.d_model, compression=compression, rngs=rngs)
    self.unroll = Unroll(decoder.d_model, rngs=rngs) if feed == "unroll" else None
    self.decoder = Stack(decoder, rngs=rngs)
    self.head = lm_head(decoder, rngs, init_convention)
    self.embed_index = embed_index
    self.quantize = quant.check(quantize)

  def embed(self, tokens_BxT: jax.Array, mask_BxT: jax.Array | None = None) -> jax.Array:
    """The single memory embedding [B, E] of each sequence."""
    return embedding_at(self.encoder(tokens_BxT, mask_BxT), self.embed_index)

  def __call__(self, tokens_BxT: jax.Array, mask_BxT: jax.Array | None = None) -> dict[str, jax.Array]:
    """`mask_BxT` masks padding in the encoder; the decoder's inputs all come from the embedding, stored
    at `quantize` precision (straight-through gradients, as memory models store memories)."""
    embedding_BxE = quant.straight_through(self.embed(tokens_BxT, mask_BxT), self.quantize)
    return {"logits": self.decode(embedding_BxE, tokens_BxT.shape[1]), "embedding": embedding_BxE}

  def decode(self, embedding_BxE: jax.Array, length: int) -> jax.Array:
    """Logits [B, length, V] regenerating a sequence from its embedding alone (any embedding: an
    encoder's, or one optimised for the decoder, training/cramming.py)."""
    code_BxD = self.bridge(embedding_BxE)
    inputs_BxTxD = self.unroll(code_BxD, length) if self.unroll is not None else repeat(code_BxD, length)
    return logits_from(self.decoder(inputs_BxTxD), self.head, None)
