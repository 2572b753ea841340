"""Preallocated decoding caches of a tower: plain pytrees, one per layer, that the blocks define.

Each block family lays out its own cache (`init_cache` beside its `decode`, memjax.models.decoding):
a transformer layer keeps the rotated keys and values of every past position, a masked mixer its
(projected) normalized inputs; a family without decode methods keeps the stack's inputs.
"""

from __future__ import annotations

import jax

from memjax.models.stack import Tower

StackCache = list  # one pytree per layer


def stack_cache(tower: Tower, batch: int, length: int) -> StackCache:
  """Zeros for `length` positions of every layer of a tower's stack."""
  limit = tower.stack.max_length()
  if limit is not None and length > limit:
    raise ValueError(f"a mixer of {limit} positions cannot hold a cache of {length} positions")
  return tower.stack.init_cache(batch, length, tower.embed.features)


def nbytes(tree) -> int:
  """Bytes held by the arrays of a pytree (a cache, or a whole decoding state)."""
  return int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)))
