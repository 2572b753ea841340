"""What blocks share to decode themselves incrementally, each over its own cache.

A block family that decodes itself defines two methods next to its training `__call__`:

- `init_cache(batch, length, dtype=None)`: its cache for `length` positions, a pytree of arrays;
- `decode(x_BxSxD, cache, positions_BxS)`: its outputs at S new positions per sequence (each
  sequence at its own positions) given the cache of the earlier ones, and the cache with the new
  positions written: equal to what `__call__` computes there on the whole sequence.

The block stack (`Stack.decode`) runs them layer by layer; a family without them decodes by re-running
the training forward (`Stack.decode`'s fallback).
"""

from __future__ import annotations

import jax

DECODE_METHODS: tuple[str, ...] = ("init_cache", "decode")


def decodes_itself(block_cls: type) -> bool:
  """Whether a block family has its own cached decoding (both methods); a clear error for half of it."""
  present = [hasattr(block_cls, name) for name in DECODE_METHODS]
  if any(present) and not all(present):
    missing = [name for name, there in zip(DECODE_METHODS, present) if not there]
    raise ValueError(f"block family {block_cls.__name__} defines {DECODE_METHODS[present.index(True)]} "
                     f"but not {', '.join(missing)}: a block decodes itself with both "
                     "(memjax.models.decoding) or with neither (its forward is re-run)")
  return all(present)


def write(cache_RxTxF: jax.Array, new_RxSxF: jax.Array, start_B: jax.Array) -> jax.Array:
  """cache[rows of b, start[b]:start[b]+S] = new[rows of b]: each sequence at its own offset.

  The R rows are B sequences of R / B rows each (their heads). One in-place dynamic-update-slice per
  sequence: a vmapped one becomes a scatter, which XLA:CPU expands into copies of the whole cache.
  """
  rows = cache_RxTxF.shape[0] // start_B.shape[0]
  new_RxSxF = new_RxSxF.astype(cache_RxTxF.dtype)
  for b in range(start_B.shape[0]):
    cache_RxTxF = jax.lax.dynamic_update_slice(cache_RxTxF, new_RxSxF[b * rows:(b + 1) * rows],
                                               (b * rows, start_B[b], 0))
  return cache_RxTxF

