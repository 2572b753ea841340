import jax
from flax import nnx

from memjax.models.config import StackConfig
from memjax.models.oracle import OracleMemoryModel


def test_oracle_decoder_sees_the_whole_sequence_through_its_memory(changed_positions):
  enc = StackConfig(family="transformer", d_model=8, n_layers=1, length=10, vocab_size=30, n_heads=2)
  dec = StackConfig(family="transformer", d_model=16, n_layers=1, length=11, vocab_size=30, n_heads=2)
  model = OracleMemoryModel(enc, dec, rngs=nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(1), (2, 10), 0, 30)
  out = model(tokens)
  assert out["logits"].shape == (2, 10, 30) and out["memories"].shape == (2, 1, 16)
  # Not causal by design: the last token reaches every position through the memory (an upper bound).
  assert changed_positions(model, tokens, 9, 30).all()
