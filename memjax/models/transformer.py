"""Llama-style causal transformer blocks: RMSNorm, RoPE attention (optionally grouped K/V), SwiGLU MLP.

Matches Hugging Face `LlamaModel` with transformers' defaults as the reference uses it: no biases,
pre-norm residual blocks, RMSNorm eps 1e-6, RoPE theta 10000, SwiGLU hidden 4d, N(0, 0.02) init.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from memjax.models.config import StackConfig
from memjax.models.dense import Dense
from memjax.models.init import LLAMA
from memjax.models.lora import LoRADense


def rope_scaling(cfg: StackConfig) -> tuple[tuple[str, object], ...]:
  """The config's RoPE scaling as hashable keyword arguments of `rope_frequencies` (static module data)."""
  return (("rope_type", cfg.rope_type), ("factor", cfg.rope_factor),
          ("low_freq_factor", cfg.rope_low_freq_factor), ("high_freq_factor", cfg.rope_high_freq_factor),
          ("original_length", cfg.rope_original_length))


def rope_frequencies(head_dim: int, theta: float, rope_type: str = "default", factor: float = 1.0,
                     low_freq_factor: float = 1.0, high_freq_factor: float = 4.0,
                     original_length: int = 8192) -> np.ndarray:
  """The [head_dim / 2] rotary frequencies, scaled as transformers' `ROPE_INIT_FUNCTIONS` do.

  'linear' divides every frequency by the factor; 'llama3' divides those whose wavelength exceeds
  original_length / low_freq_factor, keeps those below original_length / high_freq_factor, and
  interpolates smoothly in between (Llama 3.1+ long-context scaling).
  """
  inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
  if rope_type == "linear":
    return inv_freq / factor
  if rope_type == "llama3":
    wavelength = 2 * np.pi / inv_freq
    scaled = np.where(wavelength > original_length / low_freq_factor, inv_freq / factor, inv_freq)
    smooth = (original_length / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ((wavelength >= original_length / high_freq_factor)
              & (wavelength <= original_length / low_freq_factor))
    return np.where(medium, smoothed, scaled)
  if rope_type != "default":
    raise ValueError(f"unknown rope_type {rope_type!r}")
  return inv_freq


def rope_angles(length: int, head_dim: int, theta: float, **scaling) -> tuple[np.ndarray, np.ndarray]:
  """cos and sin of the rotary angles of positions 0..length-1, each [T, head_dim] in the HF
  `rotate_half` layout. Computed with numpy at trace time: a constant, not per-step work."""
  inv_freq = rope_frequencies(head_dim, theta, **scaling)
  angles_TxH2 = np.arange(length, dtype=np.float64)[:, None] * inv_freq[None, :]
  angles_TxH = np.concatenate([angles_TxH2, angles_TxH2], axis=-1)
  return np.cos(angles_TxH).astype(np.float32), np.sin(angles_TxH).astype(np.float32)


def apply_rope(x_BxTxNxH: jax.Array, cos_TxH: jax.Array, sin_TxH: jax.Array) -> jax.Array:
  """Rotates each (i, i + H/2) feature pair by its position's angle (HF `rotate_half` layout).

  cos and sin are [T, H] (one row per position) or [B, T, H] (per sequence: decoding at offsets).

  Written as two elementwise halves stacked together (one fused pass on CPU) rather than
  `x * cos + rotate_half(x) * sin`, whose concatenated copy of x is a pass of its own.
  """
  *lead, H = x_BxTxNxH.shape
  x1, x2 = jnp.moveaxis(x_BxTxNxH.reshape(*lead, 2, H // 2), -2, 0)
  cos, sin = cos_TxH[..., None, :H // 2], sin_TxH[..., None, :H // 2]
  rotated = jnp.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-2)
  return rotated.reshape(x_BxTxNxH.shape).astype(x_BxTxNxH.dtype)


def causal_attention(q_BxTxNxH: jax.Array, k_BxTxKxH: jax.Array, v_BxTxKxH: jax.Array,
                     mask_BxT: jax.Array | None = None) -> jax.Array:
  """Causal softmax attention; query head n reads key/value head n // (N / K) (as HF `repeat_kv`).

  With `mask_BxT` (1 on tokens, 0 on padding), no query attends to a padding key. A query with no
  unmasked key at or before it (a padding position before any token) attends evenly to what it may
  causally see; its output is never scored.

  On GPU this is `jax.nn.dot_product_attention` (cuDNN's fused flash attention where available).
  Elsewhere it is written for XLA:CPU: the query heads of a group are stacked along the query axis
  so every product is a plain batched GEMM, the mask is an additive constant, the softmax is
  normalized after the value product (as flash attention does) and the backward is hand-written
  (`_stacked_attention`): faster, forward and backward, than `dot_product_attention`'s XLA path
  (benchmarks/README.md, "What the speed came from").
  """
  B, T, N, H = q_BxTxNxH.shape
  if jax.default_backend() == "gpu":
    if mask_BxT is None:
      return jax.nn.dot_product_attention(q_BxTxNxH, k_BxTxKxH, v_BxTxKxH, is_causal=True)
    bias_Bx1x1xT = jnp.where(mask_BxT > 0, 0.0, -1e30)[:, None, None, :].astype(q_BxTxNxH.dtype)
    causal_TxT = np.triu(np.full((T, T), -1e30, np.float32), k=1)
    return jax.nn.dot_product_attention(q_BxTxNxH, k_BxTxKxH, v_BxTxKxH,
                                        bias=bias_Bx1x1xT + causal_TxT.astype(q_BxTxNxH.dtype))
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

  Left to itself XLA:CPU folds the transposes into the product and runs it as a slow Eigen batched
  contraction; the barriers keep a^T and the product materialized, so it is a YNNPACK GEMM (both
  speeds and the gain per `bench` step: benchmarks/README.md, "What the speed came from"). With
  the entry points' oneDNN setting (`memjax.runtime.tune_xla_cpu`) both forms run alike.
  """
  a_QxHxS = jax.lax.optimization_barrier(a_QxSxH.transpose(0, 2, 1))
  return jax.lax.optimization_barrier(jnp.matmul(a_QxHxS, b_QxSxT)).transpose(0, 2, 1)


def _linear(d_in: int, d_out: int, rngs: nnx.Rngs, cfg: StackConfig | None = None,
            name: str = "") -> Dense:
  """A bias-free projection; a LoRA-adapted one when `cfg` targets `name` (cfg.lora_targets)."""
  rank = cfg.lora_for(name) if cfg is not None else 0
  if rank:
    return LoRADense(d_in, d_out, rank=rank, alpha=cfg.lora_alpha, kernel_init=LLAMA, rngs=rngs)
  return Dense(d_in, d_out, use_bias=False, kernel_init=LLAMA, rngs=rngs)


class Attention(nnx.Module):
  """Causal multi-head attention with grouped key/value heads and RoPE."""

  def __init__(self, cfg: StackConfig, *, rngs: nnx.Rngs):
    self.n_heads, self.kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_dim
    self.q = _linear(cfg.d_model, cfg.n_heads * cfg.head_dim, rngs, cfg, "q")
    self.k = _linear(cfg.d_model, cfg.kv_heads * cfg.head_dim, rngs, cfg, "k")
    self.v = _linear(cfg.d_model, cfg.kv_heads * cfg.head_dim, rngs, cfg, "v")
    self.o = _linear(cfg.n_heads * cfg.head_dim, cfg.d_model, rngs, cfg, "o")

  def __call__(self, x_BxTxD: jax.Array, cos_TxH: jax.Array, sin_TxH: jax.Array,
               mask_BxT: jax.Array | None = None) -> jax.Array:
    B, T, _ = x_BxTxD.shape
    q_BxTxNxH = self.q(x_BxTxD).reshape(B, T, self.n_heads, self.head_dim)
    k_BxTxKxH = self.k(x_BxTxD).reshape(B, T, self.kv_heads, self.head_dim)
    v_BxTxKxH = self.v(x_BxTxD).reshape(B, T, self.kv_heads, self.head_dim)
    q_BxTxNxH = apply_rope(q_BxTxNxH, cos_TxH, sin_TxH)
    k_BxTxKxH = apply_rope(k_BxTxKxH, cos_TxH, sin_TxH)
    out_BxTxNxH = causal_attention(q_BxTxNxH, k_BxTxKxH, v_BxTxKxH, mask_BxT)
    return self.o(out_BxTxNxH.reshape(B, T, self.n_heads * self.head_dim))


@jax.custom_vjp
def swiglu(gate: jax.Array, up: jax.Array) -> jax.Array:
  """silu(gate) * up, with a hand-written backward: one sigmoid, two fused passes (faster per
  training step on CPU than XLA's autodiff of silu: benchmarks/README.md)."""
  return jax.nn.silu(gate) * up


def _swiglu_fwd(gate, up):
  return swiglu(gate, up), (gate, up)


def _swiglu_bwd(residuals, grad_out):
  gate, up = residuals
  sigmoid = jax.nn.sigmoid(gate)
  return grad_out * up * sigmoid * (1 + gate * (1 - sigmoid)), grad_out * gate * sigmoid


swiglu.defvjp(_swiglu_fwd, _swiglu_bwd)


class SwiGLU(nnx.Module):

  def __init__(self, cfg: StackConfig, *, rngs: nnx.Rngs):
    self.gate = _linear(cfg.d_model, cfg.hidden_dim, rngs, cfg, "gate")
    self.up = _linear(cfg.d_model, cfg.hidden_dim, rngs, cfg, "up")
    self.down = _linear(cfg.hidden_dim, cfg.d_model, rngs, cfg, "down")

  def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
    return self.down(swiglu(self.gate(x_BxTxD), self.up(x_BxTxD)))


class TransformerBlock(nnx.Module):
  """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

  def __init__(self, cfg: StackConfig, *, rngs: nnx.Rngs):
    self.attn_norm = nnx.RMSNorm(cfg.d_model, epsilon=cfg.norm_eps, rngs=rngs)
    self.attn = Attention(cfg, rngs=rngs)
    self.mlp_norm = nnx.RMSNorm(cfg.d_model, epsilon=cfg.norm_eps, rngs=rngs)
    self.mlp = SwiGLU(cfg, rngs=rngs)
    self.head_dim, self.rope_theta, self.rope_scaling = cfg.head_dim, cfg.rope_theta, rope_scaling(cfg)

  def __call__(self, x_BxTxD: jax.Array, mask_BxT: jax.Array | None = None) -> jax.Array:
    cos_TxH, sin_TxH = rope_angles(x_BxTxD.shape[1], self.head_dim, self.rope_theta,
                                   **dict(self.rope_scaling))
    x_BxTxD = x_BxTxD + self.attn(self.attn_norm(x_BxTxD), cos_TxH, sin_TxH, mask_BxT)
    return x_BxTxD + self.mlp(self.mlp_norm(x_BxTxD))


def final_norm(cfg: StackConfig, rngs: nnx.Rngs) -> nnx.RMSNorm:
  return nnx.RMSNorm(cfg.d_model, epsilon=cfg.norm_eps, rngs=rngs)
