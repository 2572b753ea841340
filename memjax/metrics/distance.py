"""Answer accuracy by distance: a long-context task's score split by how far back (in chunks) its
answer was stated, so that a memory that fades with distance shows as a falling curve."""

from __future__ import annotations

from typing import Iterable

import jax
import jax.numpy as jnp

from memjax.metrics.entropy import token_cross_entropy


def by_distance(logits_BxTxV: jax.Array, targets_BxT: jax.Array, weights_BxT: jax.Array,
                distance_B: jax.Array, distances: Iterable[int], *, shift: bool = True) -> dict[str, jax.Array]:
  """token_cross_entropy over the rows whose distance is d, for each d of `distances`:
  {'d<d>/loss', 'd<d>/accuracy', 'd<d>/tokens'} (a distance no row has: 0 tokens, loss and accuracy 0),
  so that evaluation weights each distance's batches by its own token count (training/loop.aggregate)."""
  metrics = {}
  for d in distances:
    row_B = (distance_B == d).astype(jnp.float32)
    scored = token_cross_entropy(logits_BxTxV, targets_BxT, weights_BxT * row_B[:, None], shift=shift)
    metrics |= {f"d{d}/{key}": value for key, value in scored.items()}
  return metrics
