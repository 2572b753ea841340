import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from memjax.models import bridge


def test_unroll_windows_wrap_around_the_embedding():
  # The blog's illustration: n_ctx = 4 positions of a d = 6 embedding, half-width windows.
  np.testing.assert_array_equal(bridge.unroll_windows(4, 6), [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]])
  windows = bridge.unroll_windows(8, 6)
  np.testing.assert_array_equal(windows[5], [5, 0, 1])  # runs off the end and wraps to the start
  np.testing.assert_array_equal(windows[6], windows[0])  # positions repeat with period d


def test_unroll_gives_each_position_its_own_input():
  unroll = bridge.Unroll(8, rngs=nnx.Rngs(0))
  out = unroll(jnp.arange(16.0).reshape(2, 8), length=6)
  assert out.shape == (2, 6, 8)
  assert len({tuple(np.round(row, 5)) for row in np.asarray(out[0])}) == 6


def test_repeat():
  out = bridge.repeat(jnp.arange(6.0).reshape(2, 3), 4)
  assert out.shape == (2, 4, 3)
  np.testing.assert_array_equal(out[1, 3], [3, 4, 5])


def test_bridge_is_identity_without_compression_or_width_change():
  b = bridge.Bridge(8, 8, rngs=nnx.Rngs(0))
  x = jnp.arange(16.0).reshape(2, 8)
  np.testing.assert_array_equal(b(x), x)
  compressed = bridge.Bridge(8, 12, compression=4, rngs=nnx.Rngs(0))
  assert compressed.down.kernel.shape == (8, 2) and compressed(x).shape == (2, 12)
  with pytest.raises(ValueError, match="compression"):
    bridge.Bridge(8, 8, compression=3, rngs=nnx.Rngs(0))


def test_embedding_at():
  hidden = jnp.arange(24.0).reshape(2, 3, 4)
  np.testing.assert_array_equal(bridge.embedding_at(hidden, -2), hidden[:, 1])
