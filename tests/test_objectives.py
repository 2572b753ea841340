import jax
import jax.numpy as jnp
import ml_collections
import pytest
from flax import nnx

from memjax import objectives
from memjax.models.config import StackConfig
from memjax.models.lm import CausalLM

CFG = ml_collections.ConfigDict(dict(clm_weight=1.0, copy_weight=0.5, copy_delimiter_tokens=0))
BATCH = {"tokens": jax.random.randint(jax.random.key(0), (2, 8), 4, 30), "mask": jnp.ones((2, 8))}
MODEL = CausalLM(StackConfig(family="transformer", d_model=8, n_layers=1, length=8, vocab_size=30,
                             n_heads=2), rngs=nnx.Rngs(0))


def build(name, task="clm"):
  return objectives.build(name, CFG, task=task, blank_id=2, delimiter_id=3)


def test_combined_reports_both_terms_and_weights_them():
  total, metrics = build("combined")(MODEL, BATCH, jnp.int32(0))
  assert {"clm/loss", "clm/accuracy", "copy/loss", "copy/accuracy"} <= set(metrics)
  assert metrics["copy/tokens"] == 2 * 4  # only the copied half is scored
  assert float(total) == pytest.approx(float(metrics["clm/loss"] + 0.5 * metrics["copy/loss"]), rel=1e-6)


@pytest.mark.parametrize("name", ["clm", "copy", "blank_copy"])
def test_single_term_objectives(name):
  total, metrics = build(name)(MODEL, BATCH, jnp.int32(0))
  assert metrics[f"{name}/loss"] == total


def test_autoencode_belongs_to_autoencoders_only():
  assert build("autoencode", task="autoencoder").views.keys() == {"text"}
  with pytest.raises(ValueError, match="does not apply"):
    build("autoencode", task="memory")
  with pytest.raises(ValueError, match="does not apply"):
    build("clm", task="autoencoder")
  with pytest.raises(ValueError, match="unknown objective"):
    build("mlm")
