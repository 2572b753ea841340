"""LoRA adapters (Hu et al. 2021) on a transformer's projections, and folding them back in.

A targeted projection computes x W + (alpha / r) (x A) B with A [D_in, r] (Kaiming-uniform, as peft)
and B [r, D_out] (zeros), so an adapted model starts as its base model. Only A and B are trained
(`is_adapter` names them for the trainable / frozen split); `merge` folds them into W, giving the
parameters of the plain model (for export).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from memjax.models.dense import Dense

ADAPTERS: tuple[str, ...] = ("lora_a", "lora_b")


class LoRADense(Dense):
  """A bias-free `Dense` plus a rank-r adapter: x W + (alpha / r) (x A) B."""

  def __init__(self, d_in: int, d_out: int, *, rank: int, alpha: float, kernel_init: Any,
               rngs: nnx.Rngs):
    super().__init__(d_in, d_out, use_bias=False, kernel_init=kernel_init, rngs=rngs)
    # peft's default: kaiming_uniform(a=sqrt(5)) on A (bound 1 / sqrt(d_in)), zeros on B.
    self.lora_a = nnx.Param(nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")(
        rngs.params(), (d_in, rank)))
    self.lora_b = nnx.Param(jnp.zeros((rank, d_out)))
    self.lora_scale = alpha / rank

  def __call__(self, x: jax.Array) -> jax.Array:
    x_NxI = x.reshape(-1, x.shape[-1])
    out_NxO = x_NxI @ self.kernel[...]
    out_NxO = out_NxO + ((x_NxI @ self.lora_a[...]) @ self.lora_b[...]) * self.lora_scale
    return out_NxO.reshape(*x.shape[:-1], self.out_features)


def is_adapter(path: tuple[Any, ...]) -> bool:
  """Whether a parameter path (keys of the pure-dict parameters) names a LoRA adapter weight."""
  return bool(path) and str(path[-1]) in ADAPTERS


def split_adapters(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
  """(adapters, everything else) of a nested parameter dict; both keep the nesting."""
  adapters: dict[str, Any] = {}
  base: dict[str, Any] = {}
  for key, value in params.items():
    if isinstance(value, dict):
      a, b = split_adapters(value)
      if a:
        adapters[key] = a
      if b:
        base[key] = b
    elif key in ADAPTERS:
      adapters[key] = value
    else:
      base[key] = value
  return adapters, base


def merge(params: dict[str, Any], scale: float) -> dict[str, Any]:
  """Folds every adapter into its kernel (W + scale A B, per stacked layer) and drops the adapters."""
  out: dict[str, Any] = {}
  for key, value in params.items():
    if isinstance(value, dict):
      if "lora_a" in value:
        a, b = np.asarray(value["lora_a"], np.float32), np.asarray(value["lora_b"], np.float32)
        kernel = np.asarray(value["kernel"], np.float32) + np.float32(scale) * np.matmul(a, b)
        out[key] = {k: v for k, v in value.items() if k not in ADAPTERS} | {"kernel": kernel}
      else:
        out[key] = merge(value, scale)
    else:
      out[key] = value
  return out
