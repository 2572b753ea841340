import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from memjax import objectives
from memjax.models.config import StackConfig
from memjax.models.lm import CausalLM

CFG = ml_collections.ConfigDict(dict(clm_weight=1.0, copy_weight=0.5, copy_delimiter_tokens=0))
BATCH = {"tokens": jax.random.randint(jax.random.key(0), (2, 8), 4, 30), "mask": jnp.ones((2, 8))}
MODEL = CausalLM(StackConfig(family="transformer", d_model=8, n_layers=1, length=8, vocab_size=30,
                             n_heads=2), rngs=nnx.Rngs(0))


TOKENS = np.asarray(BATCH["tokens"])
FIRST = TOKENS[:, :4]


def naive_next_token_loss(inputs_BxT, targets_BxT, scored_BxT):
  """The mean cross-entropy (float64 numpy) of MODEL's logits at t for target t+1, over the target
  positions t+1 marked in `scored_BxT`: an independent reference for the objectives' losses."""
  logits = np.asarray(MODEL(jnp.asarray(inputs_BxT))["logits"], np.float64)
  log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
      - logits.max(-1, keepdims=True)
  losses = [-log_probs[b, t, targets_BxT[b, t + 1]]
            for b in range(targets_BxT.shape[0]) for t in range(targets_BxT.shape[1] - 1) if scored_BxT[b, t + 1]]
  return float(np.mean(losses))


SECOND_HALF = np.arange(8)[None, :].repeat(2, 0) >= 4
EXPECTED = {  # each objective's loss, from its inputs and scored targets written out by hand
    "clm": naive_next_token_loss(TOKENS, TOKENS, np.ones((2, 8), bool)),
    "copy": naive_next_token_loss(np.concatenate([FIRST, FIRST], 1), np.concatenate([FIRST, FIRST], 1),
                                  SECOND_HALF),
    "blank_copy": naive_next_token_loss(np.concatenate([FIRST, np.full_like(FIRST, 2)], 1),
                                        np.concatenate([FIRST, FIRST], 1), SECOND_HALF),
}


def build(name, task="clm"):
  return objectives.build(name, CFG, task=task, blank_id=2, delimiter_id=3)


def test_combined_reports_both_terms_and_weights_them():
  total, metrics = build("combined")(MODEL, BATCH, jnp.int32(0))
  assert {"clm/loss", "clm/accuracy", "copy/loss", "copy/accuracy"} <= set(metrics)
  assert metrics["copy/tokens"] == 2 * 4  # only the copied half is scored
  assert float(total) == pytest.approx(float(metrics["clm/loss"] + 0.5 * metrics["copy/loss"]), rel=1e-6)
  assert float(metrics["clm/loss"]) == pytest.approx(EXPECTED["clm"], rel=1e-5)
  assert float(metrics["copy/loss"]) == pytest.approx(EXPECTED["copy"], rel=1e-5)


@pytest.mark.parametrize("name", ["clm", "copy", "blank_copy"])
def test_single_term_objectives(name):
  """Each objective's loss is the cross-entropy of its hand-written view (not only its own metric)."""
  total, metrics = build(name)(MODEL, BATCH, jnp.int32(0))
  assert metrics[f"{name}/loss"] == total
  assert float(total) == pytest.approx(EXPECTED[name], rel=1e-5)


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
  # Its copy term, by hand: inputs [first half, 3 delimiters, blanks], scored after the delimiters.
  delimited = np.concatenate([FIRST, np.full((2, 3), 3), np.full((2, 1), 2)], 1)
  scored = np.arange(8)[None, :].repeat(2, 0) >= 4 + 3
  assert float(metrics["copy/loss"]) == pytest.approx(
      naive_next_token_loss(delimited, np.concatenate([FIRST, FIRST], 1), scored), rel=1e-5)


def test_combined_copy_view_by_import_path_or_refused():
  cfg = ml_collections.ConfigDict(CFG.to_dict() | {"combined_copy": "memjax.objectives.views:language_modelling"})
  objective = objectives.build("combined", cfg, task="clm", blank_id=2, delimiter_id=3)
  assert objective.views["copy"] is objectives.views.language_modelling
  for bad, match in (("repeat", "copy view must be one of"), ("memjax.objectives.views:nope", "no attribute 'nope'"),
                     ("memjax.objectives:OBJECTIVES", "is not a view")):
    cfg.combined_copy = bad
    with pytest.raises(ValueError, match=match):
      objectives.build("combined", cfg, task="clm", blank_id=2, delimiter_id=3)
