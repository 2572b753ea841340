"""Llama-style causal transformer blocks: RMSNorm, RoPE attention (optionally grouped K/V), SwiGLU MLP.

Matches Hugging Face `LlamaModel` with transformers' defaults as the reference uses it: no biases,
pre-norm residual blocks, RMSNorm eps 1e-6, RoPE theta 10000, SwiGLU hidden 4d, N(0, 0.02) init.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from memjax.kernels.attention import causal_attention
from memjax.kernels.swiglu import swiglu
from memjax.models import decoding
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


DECODE_SHORTEST = 256  # positions the shortest decode attention reads


@functools.lru_cache(maxsize=8)
def _rope_table(length: int, head_dim: int, theta: float,
                scaling: tuple[tuple[str, object], ...]) -> tuple[np.ndarray, np.ndarray]:
  """`rope_angles` of a decode cache's positions, computed once per process, not once per layer."""
  return rope_angles(length, head_dim, theta, **dict(scaling))


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

  def init_cache(self, batch: int, length: int, dtype: jnp.dtype | None = None) -> dict[str, jax.Array]:
    """Rotated keys and values of `length` positions, [B*K, T, H] each (rows: sequence-major heads).

    Three axes, so decode attention reads the cache as plain batched matrix products: XLA:CPU
    copies a donated four-axis cache whole every step to feed it, reshaped, to a product.
    """
    dtype = dtype or self.k.kernel[...].dtype
    shape = (batch * self.kv_heads, length, self.head_dim)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}

  def decode(self, x_BxSxD: jax.Array, cache: dict[str, jax.Array], positions_BxS: jax.Array,
             cos_BxSxH: jax.Array, sin_BxSxH: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`__call__` at S new positions per sequence (consecutive, from positions[:, 0]), reading and
    writing the keys and values of `cache`; a position attends to those at or before it."""
    B, S, _ = x_BxSxD.shape
    N, K, H = self.n_heads, self.kv_heads, self.head_dim
    G, T = N // K, cache["k"].shape[1]
    q_BxSxNxH = apply_rope(self.q(x_BxSxD).reshape(B, S, N, H), cos_BxSxH, sin_BxSxH)
    k_BxSxKxH = apply_rope(self.k(x_BxSxD).reshape(B, S, K, H), cos_BxSxH, sin_BxSxH)
    v_BxSxKxH = self.v(x_BxSxD).reshape(B, S, K, H)
    rows = lambda x_BxSxKxH: x_BxSxKxH.transpose(0, 2, 1, 3).reshape(B * K, S, H)
    k_RxTxH = decoding.write(cache["k"], rows(k_BxSxKxH), positions_BxS[:, 0])
    v_RxTxH = decoding.write(cache["v"], rows(v_BxSxKxH), positions_BxS[:, 0])
    # The G query heads that read kv head k (as HF `repeat_kv`) stacked along the query axis.
    q_RxGSxH = (q_BxSxNxH * H**-0.5).reshape(B, S, K, G, H).transpose(0, 2, 3, 1, 4).reshape(B * K, G * S, H)
    # Only the cache's filled part is read: the shortest of a few lengths that holds every new position.
    lengths = decode_lengths(T)
    attend = lambda length: lambda q, k, v: _cached_attention(q, k[:, :length], v[:, :length], positions_BxS, G)
    if len(lengths) == 1:
      out_RxGSxH = attend(T)(q_RxGSxH, k_RxTxH, v_RxTxH)
    else:
      needed = jnp.max(positions_BxS[:, -1]) + 1
      choice = jnp.searchsorted(jnp.asarray(lengths), needed)
      out_RxGSxH = jax.lax.switch(choice, [attend(n) for n in lengths], q_RxGSxH, k_RxTxH, v_RxTxH)
    out_BxSxNH = out_RxGSxH.reshape(B, K, G, S, H).transpose(0, 3, 1, 2, 4).reshape(B, S, N * H)
    return self.o(out_BxSxNH.astype(x_BxSxD.dtype)), {"k": k_RxTxH, "v": v_RxTxH}


def decode_lengths(cache_length: int, shortest: int = DECODE_SHORTEST) -> tuple[int, ...]:
  """The cache lengths decode attention reads: powers of two from `shortest` up to half the cache,
  then the whole cache (a handful of branches of one compiled step, never one compile per length)."""
  lengths = []
  while (lengths[-1] * 2 if lengths else shortest) <= cache_length // 2:
    lengths.append(lengths[-1] * 2 if lengths else shortest)
  return (*lengths, cache_length)


def _cached_attention(q_RxGSxH: jax.Array, k_RxTxH: jax.Array, v_RxTxH: jax.Array,
                      positions_BxS: jax.Array, G: int) -> jax.Array:
  """Stacked queries [B*K, G*S, H] over a cache's first T positions, each attending to those at or
  before its own; scores and softmax in float32 whatever the cache dtype (products read it as is)."""
  B, S = positions_BxS.shape
  R, GS, H = q_RxGSxH.shape
  T = k_RxTxH.shape[1]
  scores_RxGSxT = jnp.einsum("rqh,rth->rqt", q_RxGSxH.astype(k_RxTxH.dtype), k_RxTxH,
                             preferred_element_type=jnp.float32)
  visible_BxGSxT = jnp.tile(jnp.arange(T)[None, None, :] <= positions_BxS[:, :, None], (1, G, 1))
  scores_BxKxGSxT = jnp.where(visible_BxGSxT[:, None], scores_RxGSxT.reshape(B, R // B, GS, T), -jnp.inf)
  probs_RxGSxT = jax.nn.softmax(scores_BxKxGSxT, axis=-1).reshape(R, GS, T)
  return jnp.einsum("rqt,rth->rqh", probs_RxGSxT.astype(v_RxTxH.dtype), v_RxTxH)


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

  def init_cache(self, batch: int, length: int, dtype: jnp.dtype | None = None) -> dict[str, jax.Array]:
    return self.attn.init_cache(batch, length, dtype)

  def decode(self, x_BxSxD: jax.Array, cache: dict[str, jax.Array],
             positions_BxS: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`__call__` at S new positions per sequence given the cache of the earlier ones."""
    cos_TxH, sin_TxH = _rope_table(cache["k"].shape[1], self.head_dim, self.rope_theta, self.rope_scaling)
    cos_BxSxH, sin_BxSxH = jnp.asarray(cos_TxH)[positions_BxS], jnp.asarray(sin_TxH)[positions_BxS]
    out_BxSxD, cache = self.attn.decode(self.attn_norm(x_BxSxD), cache, positions_BxS, cos_BxSxH, sin_BxSxH)
    x_BxSxD = x_BxSxD + out_BxSxD
    return x_BxSxD + self.mlp(self.mlp_norm(x_BxSxD)), cache


def final_norm(cfg: StackConfig, rngs: nnx.Rngs) -> nnx.RMSNorm:
  return nnx.RMSNorm(cfg.d_model, epsilon=cfg.norm_eps, rngs=rngs)
