"""Llama-style causal transformer blocks: RMSNorm, RoPE attention (optionally grouped K/V), SwiGLU MLP.

Matches Hugging Face `LlamaModel` with transformers' defaults as the reference uses it: no biases,
pre-norm residual blocks, RMSNorm eps 1e-6, RoPE theta 10000, SwiGLU hidden 4d, N(0, 0.02) init.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from memjax.models.config import StackConfig

LLAMA_INIT = nnx.initializers.normal(stddev=0.02)


def rope_angles(positions_T: jax.Array, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
  """cos and sin of the rotary angles, each [T, head_dim] in the HF `rotate_half` layout."""
  inv_freq = 1.0 / theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)
  angles_TxH2 = positions_T.astype(jnp.float32)[:, None] * inv_freq[None, :]
  angles_TxH = jnp.concatenate([angles_TxH2, angles_TxH2], axis=-1)
  return jnp.cos(angles_TxH), jnp.sin(angles_TxH)


def apply_rope(x_BxTxNxH: jax.Array, cos_TxH: jax.Array, sin_TxH: jax.Array) -> jax.Array:
  half = x_BxTxNxH.shape[-1] // 2
  rotated = jnp.concatenate([-x_BxTxNxH[..., half:], x_BxTxNxH[..., :half]], axis=-1)
  cos, sin = cos_TxH[:, None, :], sin_TxH[:, None, :]
  return (x_BxTxNxH * cos + rotated * sin).astype(x_BxTxNxH.dtype)


def _linear(d_in: int, d_out: int, rngs: nnx.Rngs) -> nnx.Linear:
  return nnx.Linear(d_in, d_out, use_bias=False, kernel_init=LLAMA_INIT, rngs=rngs)


class Attention(nnx.Module):
  """Causal multi-head attention with grouped key/value heads and RoPE."""

  def __init__(self, cfg: StackConfig, *, rngs: nnx.Rngs):
    self.n_heads, self.kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_dim
    self.q = _linear(cfg.d_model, cfg.n_heads * cfg.head_dim, rngs)
    self.k = _linear(cfg.d_model, cfg.kv_heads * cfg.head_dim, rngs)
    self.v = _linear(cfg.d_model, cfg.kv_heads * cfg.head_dim, rngs)
    self.o = _linear(cfg.n_heads * cfg.head_dim, cfg.d_model, rngs)

  def __call__(self, x_BxTxD: jax.Array, cos_TxH: jax.Array, sin_TxH: jax.Array) -> jax.Array:
    B, T, _ = x_BxTxD.shape
    q_BxTxNxH = self.q(x_BxTxD).reshape(B, T, self.n_heads, self.head_dim)
    k_BxTxKxH = self.k(x_BxTxD).reshape(B, T, self.kv_heads, self.head_dim)
    v_BxTxKxH = self.v(x_BxTxD).reshape(B, T, self.kv_heads, self.head_dim)
    q_BxTxNxH = apply_rope(q_BxTxNxH, cos_TxH, sin_TxH)
    k_BxTxKxH = apply_rope(k_BxTxKxH, cos_TxH, sin_TxH)
    out_BxTxNxH = jax.nn.dot_product_attention(q_BxTxNxH, k_BxTxKxH, v_BxTxKxH, is_causal=True)
    return self.o(out_BxTxNxH.reshape(B, T, self.n_heads * self.head_dim))


class SwiGLU(nnx.Module):

  def __init__(self, cfg: StackConfig, *, rngs: nnx.Rngs):
    self.gate = _linear(cfg.d_model, cfg.hidden_dim, rngs)
    self.up = _linear(cfg.d_model, cfg.hidden_dim, rngs)
    self.down = _linear(cfg.hidden_dim, cfg.d_model, rngs)

  def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
    return self.down(jax.nn.silu(self.gate(x_BxTxD)) * self.up(x_BxTxD))


class TransformerBlock(nnx.Module):
  """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

  def __init__(self, cfg: StackConfig, *, rngs: nnx.Rngs):
    self.attn_norm = nnx.RMSNorm(cfg.d_model, epsilon=cfg.norm_eps, rngs=rngs)
    self.attn = Attention(cfg, rngs=rngs)
    self.mlp_norm = nnx.RMSNorm(cfg.d_model, epsilon=cfg.norm_eps, rngs=rngs)
    self.mlp = SwiGLU(cfg, rngs=rngs)
    self.head_dim, self.rope_theta = cfg.head_dim, cfg.rope_theta

  def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
    cos_TxH, sin_TxH = rope_angles(jnp.arange(x_BxTxD.shape[1]), self.head_dim, self.rope_theta)
    x_BxTxD = x_BxTxD + self.attn(self.attn_norm(x_BxTxD), cos_TxH, sin_TxH)
    return x_BxTxD + self.mlp(self.mlp_norm(x_BxTxD))


def final_norm(cfg: StackConfig, rngs: nnx.Rngs) -> nnx.RMSNorm:
  return nnx.RMSNorm(cfg.d_model, epsilon=cfg.norm_eps, rngs=rngs)
