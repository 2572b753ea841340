"""Llama-style causal transformer blocks: RMSNorm, RoPE attention (optionally grouped K/V), SwiGLU MLP.

Matches Hugging Face `LlamaModel` with transformers' defaults as the reference uses it: no biases,
pre-norm residual blocks, RMSNorm eps 1e-6, RoPE theta 10000, SwiGLU hidden 4d, N(0, 0.02) init.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from memjax.kernels.attention import causal_attention
from memjax.kernels.swiglu import swiglu
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
    self.attention = cfg.attention  # the kernel path (memjax.kernels.attention), not a parameter
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
    out_BxTxNxH = causal_attention(q_BxTxNxH, k_BxTxKxH, v_BxTxKxH, mask_BxT, self.attention)
    return self.o(out_BxTxNxH.reshape(B, T, self.n_heads * self.head_dim))


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
