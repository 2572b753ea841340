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


def test_combined_copy_view_is_selectable_and_the_paper_preset_weights_as_the_reference():
  from conftest import load_config

  paper = load_config("memory.py:paper").objective
  assert (paper.combined_copy, paper.copy_weight, paper.clm_weight, paper.restart_stages) == (
      "blank_copy", 0.5, 1.0, True)
  small = load_config("memory.py:small").objective
  assert (small.combined_copy, small.copy_weight, small.restart_stages) == ("copy", 1.0, False)
  objective = objectives.build("combined", paper, task="memory", blank_id=2, delimiter_id=3)
  copy_view = objective.views["copy"](BATCH)
  # paper preset: 3 delimiter inputs, then the copied half's inputs are all blanks
  assert (copy_view["inputs"][:, 4:4 + 3] == 3).all() and (copy_view["inputs"][:, 4 + 3:] == 2).all()
  assert (build("combined").views["copy"](BATCH)["inputs"][:, 4:] == BATCH["tokens"][:, :4]).all()
  # The reference: (1/K)[sum of K CLM chunk means + sum of the 2 copy chunk means], K = 4, i.e. the
  # CLM mean plus half the copy mean when chunks hold equal numbers of scored tokens.
  total, metrics = objective(MODEL, BATCH, jnp.int32(0))
  assert float(total) == pytest.approx(float(metrics["clm/loss"] + 0.5 * metrics["copy/loss"]), rel=1e-6)


def test_combined_copy_view_by_import_path_or_refused():
  cfg = ml_collections.ConfigDict(CFG.to_dict() | {"combined_copy": "memjax.objectives.views:language_modelling"})
  objective = objectives.build("combined", cfg, task="clm", blank_id=2, delimiter_id=3)
  assert objective.views["copy"] is objectives.views.language_modelling
  for bad, match in (("repeat", "copy view must be one of"), ("memjax.objectives.views:nope", "no attribute 'nope'"),
                     ("memjax.objectives:OBJECTIVES", "is not a view")):
    cfg.combined_copy = bad
    with pytest.raises(ValueError, match=match):
      objectives.build("combined", cfg, task="clm", blank_id=2, delimiter_id=3)
