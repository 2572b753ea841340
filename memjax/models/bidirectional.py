"""BERT-style bidirectional encoder blocks: post-LayerNorm residuals, biased projections, GELU MLP.

Matches Hugging Face `BertModel` (absolute positions, eager or SDPA attention) so that a converted
BERT (python -m memjax.convert bert; memjax/models/hf_bert.py) is probed as the paper probes
BERT-large (§5.2). Every position attends to every non-padding position. The input side (learned
positions, the segment-0 token-type row, LayerNorm) is `LearnedPositions`, which the stack applies
before its blocks; there is no final norm (each block ends with one).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from memjax.models.config import StackConfig
from memjax.models.dense import Dense
from memjax.models.init import LLAMA  # N(0, 0.02), BERT's initializer_range too


def layer_norm(cfg: StackConfig, rngs: nnx.Rngs) -> nnx.LayerNorm:
  # Two-pass variance: BERT's eps (1e-12) is below float32's E[x^2] - E[x]^2 cancellation error.
  return nnx.LayerNorm(cfg.d_model, epsilon=cfg.norm_eps, use_fast_variance=False, rngs=rngs)


def _linear(d_in: int, d_out: int, rngs: nnx.Rngs) -> Dense:
  return Dense(d_in, d_out, use_bias=True, kernel_init=LLAMA, rngs=rngs)


class LearnedPositions(nnx.Module):
  """Token embeddings [B, T, D] -> LayerNorm(x + position_t): BertEmbeddings after its word lookup.

  The table holds BERT's position embeddings plus its token-type embedding of segment 0 (added at
  conversion): memjax feeds one segment, as `BertModel` does without token_type_ids.
  """

  def __init__(self, cfg: StackConfig, *, rngs: nnx.Rngs):
    self.embedding = nnx.Param(LLAMA(rngs.params(), (cfg.max_positions, cfg.d_model)))
    self.norm = layer_norm(cfg, rngs)

  def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
    T = x_BxTxD.shape[1]
    return self.norm(x_BxTxD + self.embedding[...][:T].astype(x_BxTxD.dtype))


class BidirectionalAttention(nnx.Module):
  """Multi-head attention over every (non-padding) position, with biases and no rotary embedding."""

  def __init__(self, cfg: StackConfig, *, rngs: nnx.Rngs):
    self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
    self.q, self.k, self.v, self.o = (_linear(cfg.d_model, cfg.d_model, rngs) for _ in range(4))

  def __call__(self, x_BxTxD: jax.Array, mask_BxT: jax.Array | None = None) -> jax.Array:
    B, T, D = x_BxTxD.shape
    heads = lambda y: y.reshape(B, T, self.n_heads, self.head_dim)
    q_BxTxNxH, k_BxTxNxH, v_BxTxNxH = heads(self.q(x_BxTxD)), heads(self.k(x_BxTxD)), heads(self.v(x_BxTxD))
    scores_BxNxTxS = jnp.einsum("btnh,bsnh->bnts", q_BxTxNxH, k_BxTxNxH,
                                preferred_element_type=jnp.float32) * self.head_dim**-0.5
    if mask_BxT is not None:  # padded keys get no weight (HF: the dtype's minimum added)
      scores_BxNxTxS = jnp.where(mask_BxT[:, None, None, :] > 0, scores_BxNxTxS,
                                 jnp.finfo(jnp.float32).min)
    probs_BxNxTxS = jax.nn.softmax(scores_BxNxTxS, axis=-1).astype(v_BxTxNxH.dtype)
    out_BxTxNxH = jnp.einsum("bnts,bsnh->btnh", probs_BxNxTxS, v_BxTxNxH)
    return self.o(out_BxTxNxH.reshape(B, T, D))


class GeluMLP(nnx.Module):
  """up -> exact (erf) GELU -> down, as BERT's `hidden_act='gelu'`."""

  def __init__(self, cfg: StackConfig, *, rngs: nnx.Rngs):
    self.up = _linear(cfg.d_model, cfg.hidden_dim, rngs)
    self.down = _linear(cfg.hidden_dim, cfg.d_model, rngs)

  def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
    return self.down(jax.nn.gelu(self.up(x_BxTxD), approximate=False))


class BertBlock(nnx.Module):
  """Post-norm residual block: x = norm(x + attn(x)), then norm(x + mlp(x))."""

  def __init__(self, cfg: StackConfig, *, rngs: nnx.Rngs):
    self.attn = BidirectionalAttention(cfg, rngs=rngs)
    self.attn_norm = layer_norm(cfg, rngs)
    self.mlp = GeluMLP(cfg, rngs=rngs)
    self.mlp_norm = layer_norm(cfg, rngs)

  def __call__(self, x_BxTxD: jax.Array, mask_BxT: jax.Array | None = None) -> jax.Array:
    x_BxTxD = self.attn_norm(x_BxTxD + self.attn(x_BxTxD, mask_BxT))
    return self.mlp_norm(x_BxTxD + self.mlp(x_BxTxD))
