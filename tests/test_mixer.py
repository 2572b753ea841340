import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from memjax.models import mixer
from memjax.models.config import StackConfig


def config(**kw):
  return StackConfig(**dict(family="mixer", d_model=6, n_layers=1, length=5, vocab_size=64) | kw)


def reference_token_mixing(weight_KxTxT, bias_T, z_BxTxF):
  """The reference's masked Conv1d(T, T, k, padding='same') on [B, T, F], written as loops."""
  kernel, T, _ = weight_KxTxT.shape
  B, _, F = z_BxTxF.shape
  left = (kernel - 1) // 2  # PyTorch 'same': floor((k-1)/2) zeros on the left
  y = np.zeros((B, T, F))
  for b in range(B):
    for i in range(T):
      for f in range(F):
        y[b, i, f] = bias_T[i]
        for j in range(i + 1):  # causal: only earlier and current tokens
          for p in range(kernel):
            g = f + p - left
            if 0 <= g < F:
              y[b, i, f] += weight_KxTxT[p, i, j] * z_BxTxF[b, j, g]
  return y


@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 8])
def test_flat_token_mixing_matches_reference_conv(kernel):
  mix = mixer.TokenMixing(config(mixer_kernel=kernel), rngs=nnx.Rngs(0))
  z = np.asarray(jax.random.normal(jax.random.key(1), (2, 5, 6)))
  expected = reference_token_mixing(np.asarray(mix.weight[...][0]), np.asarray(mix.bias[...][0]), z)
  np.testing.assert_allclose(mix(jnp.asarray(z)), expected, atol=1e-5)


def test_multi_head_mixing_mixes_each_head_with_its_own_map():
  mix = mixer.TokenMixing(config(mixer_heads=2, mixer_kernel=2), rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 5, 6))
  z = np.asarray(mix.proj(x))
  heads = [reference_token_mixing(np.asarray(mix.weight[...][h]), np.asarray(mix.bias[...][h]),
                                  z[..., 3 * h:3 * (h + 1)]) for h in range(2)]
  expected = mix.out(jnp.asarray(np.concatenate(heads, axis=-1), jnp.float32))
  np.testing.assert_allclose(mix(x), expected, atol=1e-5)
  assert not np.allclose(mix.weight[...][0], mix.weight[...][1])


def test_upper_triangle_of_the_weights_has_no_effect():
  mix = mixer.TokenMixing(config(mixer_kernel=3), rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 5, 6))
  before = mix(x)
  mix.weight[...] = mix.weight[...] + 10.0 * np.triu(np.ones((5, 5)), k=1)
  np.testing.assert_allclose(mix(x), before, atol=1e-6)


def test_block_shapes_and_layer_norms():
  block = mixer.MixerBlock(config(), rngs=nnx.Rngs(0))
  assert block(jnp.ones((3, 5, 6))).shape == (3, 5, 6)
  assert block.mix_norm.epsilon == 1e-5
  assert block.mlp.up.kernel.shape == (6, 24)


def test_layer_norm_matches_torch_on_rows_with_a_large_mean():
  """A padding slot's constant vector plus a little signal: flax's fast variance (E[x^2] - E[x]^2)
  loses float32 precision here; torch's two-pass LayerNorm does not."""
  import torch
  x = (300.0 + 1e-2 * np.random.default_rng(0).standard_normal((4, 128))).astype(np.float32)
  expected = torch.nn.LayerNorm(128)(torch.from_numpy(x)).detach().numpy()
  norm = mixer.layer_norm(128, nnx.Rngs(0))
  np.testing.assert_allclose(np.asarray(norm(jnp.asarray(x))), expected, atol=1e-2)  # outputs ~1
  fast = nnx.LayerNorm(128, epsilon=1e-5, rngs=nnx.Rngs(0))  # the default this replaces
  assert np.abs(np.asarray(fast(jnp.asarray(x))) - expected).max() > 1.0
