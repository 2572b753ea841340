"""Dense layer over the token axis flattened: [..., D_in] -> [..., D_out] as one GEMM."""

from __future__ import annotations

import jax
from flax import nnx


class Dense(nnx.Linear):
  """`nnx.Linear` applied to a [N, D_in] matrix of all leading positions.

  Same parameters and math; the reshape matters for speed. XLA:CPU lowers the weight gradient of a
  dot with several contracting dimensions (batch and time) to a much slower kernel than one GEMM
  (how much slower: benchmarks/README.md, "What the speed came from").
  """

  def __call__(self, x: jax.Array) -> jax.Array:
    return super().__call__(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], self.out_features)
