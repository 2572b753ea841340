import jax
import numpy as np
import pytest
from flax import nnx

from memjax.models.config import StackConfig
from memjax.models.lm import CausalLM

FAMILIES = [dict(family="transformer"), dict(family="transformer", n_kv_heads=1),
            dict(family="mixer"), dict(family="mixer", mixer_kernel=4),
            dict(family="mixer", mixer_heads=2, mixer_kernel=2)]


def config(**kw):
  return StackConfig(**dict(d_model=16, n_layers=2, length=12, vocab_size=40, n_heads=2) | kw)


@pytest.mark.parametrize("arch", FAMILIES, ids=str)
def test_shapes(arch):
  model = CausalLM(config(**arch), rngs=nnx.Rngs(0))
  out = model(jax.numpy.zeros((3, 12), jax.numpy.int32))
  assert out["logits"].shape == (3, 12, 40) and out["logits"].dtype == jax.numpy.float32
  assert out["hidden"].shape == (3, 12, 16)


@pytest.mark.parametrize("arch", FAMILIES, ids=str)
@pytest.mark.parametrize("j", [0, 5, 11])
def test_strictly_causal(arch, j, changed_positions):
  model = CausalLM(config(**arch), rngs=nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(1), (2, 12), 0, 40)
  changed = changed_positions(model, tokens, j, 40)
  assert not changed[:j].any()  # no output before j depends on token j
  assert changed[j:].all()


def test_tied_embeddings_use_the_embedding_matrix():
  model = CausalLM(config(family="transformer"), tie_embeddings=True, rngs=nnx.Rngs(0))
  assert model.head is None
  out = model(jax.numpy.zeros((1, 12), jax.numpy.int32))
  np.testing.assert_allclose(out["logits"], out["hidden"] @ model.decoder.embed.embedding[...].T, atol=1e-5)
