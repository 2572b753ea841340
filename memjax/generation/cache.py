"""Preallocated decoding caches of a block stack: plain pytrees of per-layer arrays.

A transformer layer keeps the rotated keys and the values of every past position, heads first
([B, K, T, H] each, K grouped key/value heads), so that attention reads them as batched matrix
products without a transposed copy. A masked mixer's output at position i is a fixed weighted sum
of its (projected) normalized inputs at positions <= i, so a mixer layer keeps those inputs, per
mixing head ([B, n, T, D/n]). Both are written in place at each sequence's own offsets (axis 2)
and read under a causal mask.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from memjax.models.mixer import MixerBlock
from memjax.models.stack import Stack
from memjax.models.transformer import TransformerBlock

StackCache = dict[str, list[jax.Array]]


def is_transformer(stack: Stack) -> bool:
  if not isinstance(stack.blocks, (TransformerBlock, MixerBlock)):
    raise ValueError(f"incremental decoding knows transformer and mixer blocks, not "
                     f"{type(stack.blocks).__name__} (a user-defined model family)")
  return isinstance(stack.blocks, TransformerBlock)


def max_length(stack: Stack) -> int | None:
  """Positions a stack can attend over: a mixer's map length; None (unbounded) for attention."""
  return None if is_transformer(stack) else stack.blocks.mix.weight.shape[-1]


def stack_cache(stack: Stack, batch: int, length: int, dtype: jnp.dtype = jnp.float32) -> StackCache:
  """Zeros for `length` positions of every layer of `stack`."""
  limit = max_length(stack)
  if limit is not None and length > limit:
    raise ValueError(f"a mixer of {limit} positions cannot hold a cache of {length} positions")
  n = stack.n_layers
  if is_transformer(stack):
    attn = stack.blocks.attn
    shape = (batch, attn.kv_heads, length, attn.head_dim)
    return {"k": [jnp.zeros(shape, dtype) for _ in range(n)], "v": [jnp.zeros(shape, dtype) for _ in range(n)]}
  heads, width = max(stack.blocks.mix.heads, 1), stack.blocks.mlp.up.in_features
  return {"z": [jnp.zeros((batch, heads, length, width // heads), dtype) for _ in range(n)]}


def nbytes(tree) -> int:
  """Bytes held by the arrays of a pytree (a cache, or a whole decoding state)."""
  return int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)))


def write(cache_BxNxTxF: jax.Array, new_BxNxSxF: jax.Array, start_B: jax.Array) -> jax.Array:
  """cache[b, :, start[b]:start[b]+S] = new[b]: each sequence at its own offset."""
  update = lambda c, u, s: jax.lax.dynamic_update_slice_in_dim(c, u.astype(c.dtype), s, axis=1)
  return jax.vmap(update)(cache_BxNxTxF, new_BxNxSxF, start_B)
