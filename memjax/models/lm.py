"""Causal language model: a decoder tower and an LM head (optionally tied to its embedding)."""

from __future__ import annotations

import jax
from flax import nnx

from memjax.models.config import StackConfig
from memjax.models.stack import Tower, lm_head, logits_from


class CausalLM(nnx.Module):
  """tokens [B, T] -> {'logits' [B, T, V] (position t predicts token t+1), 'hidden' [B, T, D]}."""

  def __init__(self, cfg: StackConfig, *, tie_embeddings: bool = False, rngs: nnx.Rngs):
    self.decoder = Tower(cfg, rngs=rngs)
    self.head = None if tie_embeddings else lm_head(cfg, rngs)

  def __call__(self, tokens_BxT: jax.Array, mask_BxT: jax.Array | None = None) -> dict[str, jax.Array]:
    hidden_BxTxD = self.decoder(tokens_BxT, mask_BxT)
    return {"logits": logits_from(hidden_BxTxD, self.head, self.decoder.embed), "hidden": hidden_BxTxD}
