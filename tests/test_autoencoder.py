import jax
import numpy as np
import pytest
from flax import nnx

from memjax.models.autoencoder import Autoencoder
from memjax.models.config import StackConfig


def config(family, d=16):
  return StackConfig(family=family, d_model=d, n_layers=2, length=10, vocab_size=30, n_heads=2)


@pytest.mark.parametrize("family", ["transformer", "mixer"])
@pytest.mark.parametrize("feed", ["repeat", "unroll"])
def test_shapes_and_single_embedding_bottleneck(family, feed):
  model = Autoencoder(config(family), config(family, d=24), feed=feed, compression=2, rngs=nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(0), (3, 10), 0, 30)
  out = model(tokens)
  assert out["logits"].shape == (3, 10, 30) and out["embedding"].shape == (3, 16)
  # Every output depends on the last token (the embedding's position) and on nothing else directly.
  changed = np.asarray(abs(model(tokens.at[:, -1].set((tokens[:, -1] + 1) % 30))["logits"]
                           - out["logits"]).max(axis=(0, 2)) > 0)
  assert changed.all()


def test_embedding_index_picks_the_token():
  model = Autoencoder(config("transformer"), config("transformer"), embed_index=-2, rngs=nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(0), (2, 10), 0, 30)
  np.testing.assert_allclose(model.embed(tokens), model.encoder(tokens)[:, -2])
  # With the second-to-last embedding (causal encoder), the last token carries no information.
  np.testing.assert_allclose(model(tokens)["logits"], model(tokens.at[:, -1].set(0))["logits"])


def test_unknown_feed_is_refused():
  with pytest.raises(ValueError, match="feed"):
    Autoencoder(config("mixer"), config("mixer"), feed="tile", rngs=nnx.Rngs(0))
