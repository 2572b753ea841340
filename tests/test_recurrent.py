import jax
import pytest
from flax import nnx

from memjax.models.config import StackConfig
from memjax.models.recurrent import RecurrentMemoryModel

K, L, V = 3, 4, 30


@pytest.mark.parametrize("family", ["transformer", "mixer"])
def test_shapes_and_causal_recurrence(family, changed_positions):
  cfg = StackConfig(family=family, d_model=16, n_layers=2, length=L + 1, vocab_size=V, n_heads=2)
  model = RecurrentMemoryModel(cfg, chunks=K, rngs=nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(1), (2, K * L), 0, V)
  out = model(tokens)
  assert out["logits"].shape == (2, K * L, V) and out["memories"].shape == (2, K, 16)
  changed = changed_positions(model, tokens, 1, V)
  assert not changed[:1].any() and changed[1:].all()  # carried memory reaches every later chunk
