"""Causal attention written for XLA:CPU, with a hand-written backward pass.

The query heads of a group are stacked along the query axis so every product is a plain batched
GEMM, the mask is an additive constant, the softmax is normalized after the value product (as flash
attention does) and the backward is hand-written (`_stacked_attention`, which keeps the T x T
weights as a residual): faster, forward and backward, than `jax.nn.dot_product_attention`'s XLA
path (benchmarks/README.md, "What the speed came from").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def cpu_attention(q_BxTxNxH: jax.Array, k_BxTxKxH: jax.Array, v_BxTxKxH: jax.Array,
                  mask_BxT: jax.Array | None = None) -> jax.Array:
  """Causal softmax attention (see `memjax.kernels.attention.causal_attention` for the contract)."""
  B, T, N, H = q_BxTxNxH.shape
  K = k_BxTxKxH.shape[2]
  G = N // K
  heads_first = lambda x: x.transpose(0, 2, 1, 3).reshape(B * K, T, H)
  q_QxGTxH = (q_BxTxNxH * H**-0.5).reshape(B, T, K, G, H).transpose(0, 2, 3, 1, 4).reshape(B * K, G * T, H)
  mask_GTxT = np.tile(np.triu(np.full((T, T), -1e30, np.float32), k=1), (G, 1))
  if mask_BxT is not None:  # padding keys get -1e30 more (finite: a row of only those stays defined)
    bias_Qx1xT = jnp.repeat(jnp.where(mask_BxT > 0, 0.0, -1e30), K, axis=0)[:, None, :]
    mask_GTxT = mask_GTxT + bias_Qx1xT
  out_QxGTxH = _stacked_attention(q_QxGTxH, heads_first(k_BxTxKxH), heads_first(v_BxTxKxH), mask_GTxT)
  return out_QxGTxH.reshape(B, K, G, T, H).transpose(0, 3, 1, 2, 4).reshape(B, T, N, H)


def _attention_forward(q_QxSxH, k_QxTxH, v_QxTxH, mask_SxT):
  scores_QxSxT = jnp.matmul(q_QxSxH, k_QxTxH.transpose(0, 2, 1)) + mask_SxT
  weights_QxSxT = jnp.exp(scores_QxSxT - scores_QxSxT.max(axis=-1, keepdims=True))
  norm_QxSx1 = weights_QxSxT.sum(axis=-1, keepdims=True)
  return jnp.matmul(weights_QxSxT, v_QxTxH) / norm_QxSx1, weights_QxSxT, norm_QxSx1


@jax.custom_vjp
def _stacked_attention(q_QxSxH: jax.Array, k_QxTxH: jax.Array, v_QxTxH: jax.Array,
                       mask_SxT: jax.Array) -> jax.Array:
  """softmax(q k^T + mask) v over S stacked queries and T keys per batch entry Q."""
  return _attention_forward(q_QxSxH, k_QxTxH, v_QxTxH, mask_SxT)[0]


def _stacked_attention_fwd(q_QxSxH, k_QxTxH, v_QxTxH, mask_SxT):
  out_QxSxH, weights_QxSxT, norm_QxSx1 = _attention_forward(q_QxSxH, k_QxTxH, v_QxTxH, mask_SxT)
  return out_QxSxH, (q_QxSxH, k_QxTxH, v_QxTxH, out_QxSxH, weights_QxSxT, norm_QxSx1)


def _stacked_attention_bwd(residuals, d_out_QxSxH):
  q_QxSxH, k_QxTxH, v_QxTxH, out_QxSxH, weights_QxSxT, norm_QxSx1 = residuals
  probs_QxSxT = weights_QxSxT / norm_QxSx1
  d_probs_QxSxT = jnp.matmul(d_out_QxSxH, v_QxTxH.transpose(0, 2, 1))
  d_scores_QxSxT = probs_QxSxT * (d_probs_QxSxT - (d_out_QxSxH * out_QxSxH).sum(axis=-1, keepdims=True))
  d_q_QxSxH = jnp.matmul(d_scores_QxSxT, k_QxTxH)
  d_k_QxTxH = _contract_queries(q_QxSxH, d_scores_QxSxT)
  d_v_QxTxH = _contract_queries(d_out_QxSxH, probs_QxSxT)
  return d_q_QxSxH, d_k_QxTxH, d_v_QxTxH, None


_stacked_attention.defvjp(_stacked_attention_fwd, _stacked_attention_bwd)


def _contract_queries(a_QxSxH: jax.Array, b_QxSxT: jax.Array) -> jax.Array:
  """b^T a (contracting the query axis S) computed as (a^T b)^T.

  Left to itself XLA:CPU folds the transposes into the product and runs it on Eigen's slower GEMM;
  the barriers keep a^T and the product materialized, so it is a YNNPACK GEMM (the gain per `bench`
  step: benchmarks/README.md, "What the speed came from"). With
  the entry points' oneDNN setting (`memjax.runtime.tune_xla_cpu`) both forms run alike.
  """
  a_QxHxS = jax.lax.optimization_barrier(a_QxSxH.transpose(0, 2, 1))
  return jax.lax.optimization_barrier(jnp.matmul(a_QxHxS, b_QxSxT)).transpose(0, 2, 1)
