"""Causal attention, by the path a config names (`StackConfig.attention`).

- 'xla': `jax.nn.dot_product_attention` (cuDNN's fused flash attention on GPU where available,
  XLA's own on TPU);
- 'splash': the Pallas splash-attention kernel over the mesh (TPU; interpreted elsewhere: slow);
- 'cpu': written for XLA:CPU, with a hand-written backward pass (memjax.kernels.cpu_attention);
- 'auto': 'cpu' on CPU, 'xla' on GPU and TPU (the platform compiled for: memjax.kernels.placement).
Every path computes the same function of the same parameters, so a run may change it on resuming.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from memjax.kernels import placement
from memjax.kernels.cpu_attention import cpu_attention
from memjax.kernels.splash import splash_attention

ATTENTIONS: tuple[str, ...] = ("auto", "xla", "splash", "cpu")


def resolve(attention: str, x: jax.Array | None = None) -> str:
  """The path 'auto' stands for on the platform x is computed on (memjax.kernels.placement; without
  x, this process's default backend); other names as they are."""
  if attention not in ATTENTIONS:
    raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
  if attention == "auto":
    platform = placement.platform_of(x) if x is not None else jax.default_backend()
    return "cpu" if platform == "cpu" else "xla"
  return attention


def xla_attention(q_BxTxNxH: jax.Array, k_BxTxKxH: jax.Array, v_BxTxKxH: jax.Array,
                  mask_BxT: jax.Array | None = None) -> jax.Array:
  """`jax.nn.dot_product_attention`, padding as an additive bias (finite, as the CPU path's)."""
  T = q_BxTxNxH.shape[1]
  if mask_BxT is None:
    return jax.nn.dot_product_attention(q_BxTxNxH, k_BxTxKxH, v_BxTxKxH, is_causal=True)
  bias_Bx1x1xT = jnp.where(mask_BxT > 0, 0.0, -1e30)[:, None, None, :].astype(q_BxTxNxH.dtype)
  causal_TxT = np.triu(np.full((T, T), -1e30, np.float32), k=1)
  return jax.nn.dot_product_attention(q_BxTxNxH, k_BxTxKxH, v_BxTxKxH,
                                      bias=bias_Bx1x1xT + causal_TxT.astype(q_BxTxNxH.dtype))


PATHS = {"xla": xla_attention, "splash": splash_attention, "cpu": cpu_attention}


def causal_attention(q_BxTxNxH: jax.Array, k_BxTxKxH: jax.Array, v_BxTxKxH: jax.Array,
                     mask_BxT: jax.Array | None = None, attention: str = "auto") -> jax.Array:
  """Causal softmax attention; query head n reads key/value head n // (N / K) (as HF `repeat_kv`).

  With `mask_BxT` (1 on tokens, 0 on padding), no query attends to a padding key. A query with no
  unmasked key at or before it (a padding position before any token) is defined but differs between
  paths; its output is never scored.
  """
  return PATHS[resolve(attention, q_BxTxNxH)](q_BxTxNxH, k_BxTxKxH, v_BxTxKxH, mask_BxT)
