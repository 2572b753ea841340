"""Quantised memories (issue 21 §2): how many bytes a memory vector needs for the decoder to read it.

Modes: 'none' (float32), 'bf16' (round to nearest even), 'int8' and 'int4' (symmetric, one absmax
scale per memory vector: code = round(x / scale), scale = absmax / (2^(bits-1) - 1)) and 'binary'
(sign x mean |x| of the vector). A memory is stored as (codes, scale): `encode` and `decode` are
that storage; `fake_quantize` is their round trip. Training either rounds with straight-through
gradients (`straight_through`: the forward value is the quantised one, the gradient the identity's)
or, with `noise`, adds uniform noise one quantisation step wide (the paper §2.2 QAT-noise remark),
whose gradient is also the identity's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MODES: tuple[str, ...] = ("none", "bf16", "int8", "int4", "binary")
BITS = {"none": 32, "bf16": 16, "int8": 8, "int4": 4, "binary": 1}
LEVELS = {"int8": 127, "int4": 7}  # the largest code of the symmetric integer modes
SCALE_BYTES = 4  # one float32 scale per vector (int8, int4, binary)


def check(mode: str) -> str:
  if mode not in MODES:
    raise ValueError(f"memory.quantize must be one of {MODES}, got {mode!r}")
  return mode


def scaled(mode: str) -> bool:
  """Whether a mode stores a per-vector scale beside its codes."""
  return mode in LEVELS or mode == "binary"


def bytes_per_memory(mode: str, d_model: int) -> float:
  """Stored bytes of one memory of width d: d x bits / 8, plus the scale's bytes."""
  return d_model * BITS[check(mode)] / 8 + (SCALE_BYTES if scaled(mode) else 0)


def code_dtype(mode: str) -> jnp.dtype:
  """The dtype codes are held in (int4 and binary codes take a byte each until they are packed)."""
  return {"none": jnp.float32, "bf16": jnp.bfloat16}.get(check(mode), jnp.int8)


def encode(x_NxD: jax.Array, mode: str) -> tuple[jax.Array, jax.Array]:
  """(codes [..., D] in code_dtype(mode), scale [...] float32; ones where a mode has none)."""
  check(mode)
  x_NxD = x_NxD.astype(jnp.float32)
  ones_N = jnp.ones(x_NxD.shape[:-1], jnp.float32)
  if mode == "none":
    return x_NxD, ones_N
  if mode == "bf16":
    return x_NxD.astype(jnp.bfloat16), ones_N
  if mode == "binary":
    return jnp.where(x_NxD >= 0, 1, -1).astype(jnp.int8), jnp.mean(jnp.abs(x_NxD), axis=-1)
  levels = LEVELS[mode]
  scale_N = jnp.max(jnp.abs(x_NxD), axis=-1) / levels
  safe_N = jnp.where(scale_N > 0, scale_N, 1.0)  # an all-zero vector keeps zero codes
  codes = jnp.clip(jnp.round(x_NxD / safe_N[..., None]), -levels, levels)
  return codes.astype(jnp.int8), scale_N


def decode(codes_NxD: jax.Array, scale_N: jax.Array, mode: str) -> jax.Array:
  """The float32 memory a decoder reads from stored (codes, scale)."""
  if check(mode) in ("none", "bf16"):
    return codes_NxD.astype(jnp.float32)
  return codes_NxD.astype(jnp.float32) * scale_N[..., None]


def fake_quantize(x_NxD: jax.Array, mode: str) -> jax.Array:
  """decode(encode(x)): the value of x after storage, in float32."""
  return decode(*encode(x_NxD, mode), mode)


def step_size(x_NxD: jax.Array, mode: str) -> jax.Array:
  """The gap between neighbouring quantised values around x (broadcastable to x): the scale for
  int8/int4, 2 mean|x| for binary (its two values), bf16's spacing at |x| (8 significand bits)."""
  x_NxD = x_NxD.astype(jnp.float32)
  if mode in LEVELS:
    return (jnp.max(jnp.abs(x_NxD), axis=-1) / LEVELS[mode])[..., None]
  if mode == "binary":
    return 2 * jnp.mean(jnp.abs(x_NxD), axis=-1, keepdims=True)
  if mode == "bf16":
    exponent = jnp.floor(jnp.log2(jnp.maximum(jnp.abs(x_NxD), jnp.finfo(jnp.float32).tiny)))
    return jnp.exp2(exponent - 7)
  return jnp.zeros_like(x_NxD)


def straight_through(x_NxD: jax.Array, mode: str) -> jax.Array:
  """Forward: fake_quantize(x); backward: the identity (x + stop_gradient(q(x) - x))."""
  if check(mode) == "none":
    return x_NxD
  x_NxD = x_NxD.astype(jnp.float32)
  return x_NxD + jax.lax.stop_gradient(fake_quantize(x_NxD, mode) - x_NxD)


def noise(x_NxD: jax.Array, mode: str, key: jax.Array) -> jax.Array:
  """x + U(-step/2, step/2) (one quantisation step wide); the gradient is the identity's."""
  if check(mode) == "none":
    return x_NxD
  x_NxD = x_NxD.astype(jnp.float32)
  step = jax.lax.stop_gradient(step_size(x_NxD, mode))
  return x_NxD + step * jax.random.uniform(key, x_NxD.shape, jnp.float32, -0.5, 0.5)
