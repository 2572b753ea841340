import jax
import numpy as np
import pytest
from flax import nnx

from memjax.models.config import StackConfig
from memjax.models.memory import MemoryModel, variable_slot_layout

K, L, V = 4, 4, 30


def config(family, length, d=16):
  return StackConfig(family=family, d_model=d, n_layers=2, length=length, vocab_size=V, n_heads=2)


def model(family="transformer", slots="fixed", memory=True):
  encoder = config(family, L, d=8) if memory else None  # narrower encoder: projected to the decoder
  return MemoryModel(encoder, config(family, K - 1 + L), chunks=K, slots=slots, rngs=nnx.Rngs(0))


TOKENS = jax.random.randint(jax.random.key(1), (2, K * L), 0, V)


@pytest.mark.parametrize("family", ["transformer", "mixer"])
@pytest.mark.parametrize("slots", ["fixed", "variable"])
def test_shapes(family, slots):
  out = model(family, slots)(TOKENS)
  assert out["logits"].shape == (2, K * L, V)
  assert out["memories"].shape == (2, K - 1, 16)


@pytest.mark.parametrize("family", ["transformer", "mixer"])
@pytest.mark.parametrize("slots", ["fixed", "variable"])
@pytest.mark.parametrize("j", [2, 5, 15])
def test_causal_and_later_chunks_read_earlier_chunks_through_memories(family, slots, j, changed_positions):
  changed = changed_positions(model(family, slots), TOKENS, j, V)
  assert not changed[:j].any()
  assert changed[j:].all()


def test_without_memory_each_chunk_is_decoded_alone(changed_positions):
  changed = changed_positions(model(memory=False), TOKENS, 2, V)
  # Token 2 (chunk 0) reaches chunk 0's positions 2..3 (position 3 predicts chunk 1's first token)
  # and nothing else: no encoder, constant memories.
  np.testing.assert_array_equal(changed, [0, 0, 1, 1] + [0] * (K - 1) * L)


def test_no_memory_model_has_no_encoder_parameters():
  params = nnx.to_pure_dict(nnx.state(model(memory=False), nnx.Param))
  assert "encoder" not in params and "bridge" not in params


def test_variable_slot_layout():
  source, read = variable_slot_layout(3, 2)  # table: m0 m1 | t0 t1 | pad  (indices 0 1 | 2 3 | 4)
  np.testing.assert_array_equal(source, [[2, 3, 4, 4], [0, 2, 3, 4], [0, 1, 2, 3]])
  np.testing.assert_array_equal(read, [[0, 1], [1, 2], [2, 3]])


def test_chunking_errors():
  with pytest.raises(ValueError, match="divisible"):
    model()(TOKENS[:, :-1])
  with pytest.raises(ValueError, match="2 chunks"):
    MemoryModel(None, config("transformer", 4), chunks=1, rngs=nnx.Rngs(0))
