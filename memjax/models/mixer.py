"""Masked mixer blocks (Badger 2024, arXiv 2409.01482), as in the reference `MixerBlock` / `MixerHead`.

Token mixing is a learned lower-triangular `T x T` map per layer, so position i only reads positions
j <= i. With kernel k > 1 the map also mixes k neighbouring feature indices ('same' padding, PyTorch's
convention for even k), exactly like the reference's `Conv1d(T, T, k)` applied to a [B, T, d] tensor.
The multi-head form projects to d/h features per head, mixes each head with its own map and
concatenates into an output projection (without the reference's stale-index bug).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from memjax.models import decoding
from memjax.models.config import StackConfig
from memjax.models.init import torch_linear, torch_uniform

LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm default, as in the reference


def shifted_features(z_BxTxF: jax.Array, kernel: int) -> jax.Array:
  """[B, k, T, F]: tap p holds z[..., f + p - (k-1)//2], zero outside [0, F) ('same' padding)."""
  left = (kernel - 1) // 2
  padded = jnp.pad(z_BxTxF, ((0, 0), (0, 0), (left, kernel - 1 - left)))
  F = z_BxTxF.shape[-1]
  return jnp.stack([padded[..., p:p + F] for p in range(kernel)], axis=1)


def mix_taps(weight_NxKxTxT: jax.Array, z_BxNxTxF: jax.Array) -> jax.Array:
  """y[b, n, i, f] = sum_{j, p} W[n, p, i, j] z[b, n, j, f + p - (k-1)//2]: a 1-D convolution over
  the feature axis with T input channels (j), T output channels (i) and one group per map, as the
  reference's Conv1d(T, T, k). The convolution reads each input once where stacking the k shifted
  copies of z first would write and read k copies of the activations, forward and backward."""
  N, k, T, _ = weight_NxKxTxT.shape
  B, _, _, F = z_BxNxTxF.shape
  left = (k - 1) // 2
  y_BxNTxF = jax.lax.conv_general_dilated(
      z_BxNxTxF.reshape(B, N * T, F), weight_NxKxTxT.transpose(0, 2, 3, 1).reshape(N * T, T, k),
      window_strides=(1,), padding=[(left, k - 1 - left)], dimension_numbers=("NCW", "OIW", "NCW"),
      feature_group_count=N)
  return y_BxNTxF.reshape(B, N, T, F)


class TokenMixing(nnx.Module):
  """Causal token mixing y_i = b_i + sum_{j<=i} sum_p W[p, i, j] z_j(shifted by p), per head."""

  def __init__(self, cfg: StackConfig, *, rngs: nnx.Rngs):
    self.heads = cfg.mixer_heads
    self.kernel = cfg.mixer_kernel
    n_maps = max(cfg.mixer_heads, 1)
    T = cfg.length
    init = torch_uniform(T * cfg.mixer_kernel)
    self.weight = nnx.Param(init(rngs.params(), (n_maps, cfg.mixer_kernel, T, T)))
    self.bias = nnx.Param(init(rngs.params(), (n_maps, T)))
    if self.heads:
      self.proj = torch_linear(cfg.d_model, cfg.d_model, rngs)
      self.out = torch_linear(cfg.d_model, cfg.d_model, rngs)

  def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
    B, T, D = x_BxTxD.shape
    n_maps = max(self.heads, 1)
    z_BxTxD = self.proj(x_BxTxD) if self.heads else x_BxTxD
    z_BxNxTxF = z_BxTxD.reshape(B, T, n_maps, D // n_maps).transpose(0, 2, 1, 3)
    causal_TxT = jnp.tril(jnp.ones((T, T), dtype=x_BxTxD.dtype))
    weight_NxKxTxT = self.weight[...] * causal_TxT
    if self.kernel == 1:
      y_BxNxTxF = jnp.einsum("nij,bnjf->bnif", weight_NxKxTxT[:, 0], z_BxNxTxF)
    else:
      y_BxNxTxF = mix_taps(weight_NxKxTxT, z_BxNxTxF)
    y_BxNxTxF = y_BxNxTxF + self.bias[...][None, :, :, None]
    y_BxTxD = y_BxNxTxF.transpose(0, 2, 1, 3).reshape(B, T, D)
    return self.out(y_BxTxD) if self.heads else y_BxTxD

  @property
  def max_length(self) -> int:
    """Positions the map spans: the most a decode cache may hold."""
    return self.weight.shape[-1]

  def init_cache(self, batch: int, length: int, width: int,
                 dtype: jnp.dtype | None = None) -> dict[str, jax.Array]:
    """The (projected) inputs of width `width` at `length` positions per mixing head, [B*n, T, D/n]
    (rows: sequence-major heads): position i's output is a fixed weighted sum of those at <= i."""
    if length > self.max_length:
      raise ValueError(f"a mixer of {self.max_length} positions cannot hold a cache of {length} positions")
    n_maps = max(self.heads, 1)
    return {"z": jnp.zeros((batch * n_maps, length, width // n_maps), dtype or self.weight[...].dtype)}

  def decode(self, x_BxSxD: jax.Array, cache: dict[str, jax.Array],
             positions_BxS: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`__call__` at S new positions per sequence, reading and writing the inputs in `cache`."""
    B, S, D = x_BxSxD.shape
    n = max(self.heads, 1)
    T = cache["z"].shape[1]
    z_BxSxD = self.proj(x_BxSxD) if self.heads else x_BxSxD
    z_RxSxF = z_BxSxD.reshape(B, S, n, D // n).transpose(0, 2, 1, 3).reshape(B * n, S, D // n)
    z_RxTxF = decoding.write(cache["z"], z_RxSxF, positions_BxS[:, 0])
    # Products read the cache as it is (three axes): XLA:CPU copies a donated cache fed reshaped.
    rows_NxKxBxSxT = self.weight[...][:, :, positions_BxS, :T]  # the map's rows of the new positions
    visible_BxSxT = jnp.arange(T)[None, None, :] <= positions_BxS[:, :, None]
    rows_NxKxBxSxT = jnp.where(visible_BxSxT, rows_NxKxBxSxT, 0)
    rows_RxKxSxT = rows_NxKxBxSxT.transpose(2, 0, 1, 3, 4).reshape(B * n, self.kernel, S, T)
    if self.kernel == 1:
      y_RxSxF = jnp.einsum("rst,rtf->rsf", rows_RxKxSxT[:, 0], z_RxTxF)
    else:
      y_RxSxF = jnp.einsum("rkst,rktf->rsf", rows_RxKxSxT, shifted_features(z_RxTxF, self.kernel))
    bias_RxS = self.bias[...][:, positions_BxS].transpose(1, 0, 2).reshape(B * n, S)
    y_BxSxD = (y_RxSxF + bias_RxS[..., None]).reshape(B, n, S, D // n).transpose(0, 2, 1, 3).reshape(B, S, D)
    return (self.out(y_BxSxD) if self.heads else y_BxSxD), {"z": z_RxTxF}


class MixerMLP(nnx.Module):

  def __init__(self, cfg: StackConfig, *, rngs: nnx.Rngs):
    self.up = torch_linear(cfg.d_model, cfg.hidden_dim, rngs)
    self.down = torch_linear(cfg.hidden_dim, cfg.d_model, rngs)

  def __call__(self, x_BxTxD: jax.Array) -> jax.Array:
    return self.down(jax.nn.gelu(self.up(x_BxTxD), approximate=False))


def layer_norm(d_model: int, rngs: nnx.Rngs) -> nnx.LayerNorm:
  """torch.nn.LayerNorm: eps 1e-5 and the two-pass variance (flax's default E[x^2] - E[x]^2 loses
  float32 precision on rows with a large mean, e.g. the constant vectors of padding slots)."""
  return nnx.LayerNorm(d_model, epsilon=LAYER_NORM_EPS, use_fast_variance=False, rngs=rngs)


class MixerBlock(nnx.Module):
  """Pre-LayerNorm residual block: x + mix(norm(x)), then x + mlp(norm(x))."""

  def __init__(self, cfg: StackConfig, *, rngs: nnx.Rngs):
    self.mix_norm = layer_norm(cfg.d_model, rngs)
    self.mix = TokenMixing(cfg, rngs=rngs)
    self.mlp_norm = layer_norm(cfg.d_model, rngs)
    self.mlp = MixerMLP(cfg, rngs=rngs)

  def __call__(self, x_BxTxD: jax.Array, mask_BxT: jax.Array | None = None) -> jax.Array:
    """`mask_BxT` is ignored: a mixer's token mixing has no padding mask (nor the reference's)."""
    del mask_BxT
    x_BxTxD = x_BxTxD + self.mix(self.mix_norm(x_BxTxD))
    return x_BxTxD + self.mlp(self.mlp_norm(x_BxTxD))

  @property
  def max_length(self) -> int:
    return self.mix.max_length

  def init_cache(self, batch: int, length: int, dtype: jnp.dtype | None = None) -> dict[str, jax.Array]:
    return self.mix.init_cache(batch, length, self.mlp.up.in_features, dtype)

  def decode(self, x_BxSxD: jax.Array, cache: dict[str, jax.Array],
             positions_BxS: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`__call__` at S new positions per sequence given the cache of the earlier ones."""
    out_BxSxD, cache = self.mix.decode(self.mix_norm(x_BxSxD), cache, positions_BxS)
    x_BxSxD = x_BxSxD + out_BxSxD
    return x_BxSxD + self.mlp(self.mlp_norm(x_BxSxD)), cache
