import jax
import numpy as np
import pytest
from flax import nnx

from memjax.models.config import StackConfig
from memjax.models.stack import Stack, Tower


@pytest.mark.parametrize("family", ["transformer", "mixer"])
def test_scanned_and_unrolled_layers_compute_the_same(family):
  cfg = StackConfig(family=family, d_model=16, n_layers=3, length=8, vocab_size=32, n_heads=2)
  unrolled = Tower(cfg, rngs=nnx.Rngs(0))
  scanned = Tower(cfg.replace(scan_layers=True), rngs=nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(1), (2, 8), 0, 32)
  np.testing.assert_allclose(unrolled(tokens), scanned(tokens), atol=1e-5)


def test_layer_parameters_are_stacked_on_a_leading_axis():
  cfg = StackConfig(family="transformer", d_model=16, n_layers=3, length=8, vocab_size=32, n_heads=2)
  params = nnx.to_pure_dict(nnx.state(Stack(cfg, rngs=nnx.Rngs(0)), nnx.Param))
  assert params["blocks"]["attn"]["q"]["kernel"].shape == (3, 16, 16)
  assert params["norm"]["scale"].shape == (16,)


def test_mixer_stack_has_no_final_norm():
  cfg = StackConfig(family="mixer", d_model=16, n_layers=2, length=8, vocab_size=32)
  assert Stack(cfg, rngs=nnx.Rngs(0)).norm is None
