"""The built-in retrieval objective (memjax/objectives/retrieval.py) against hand-written references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from memjax import api as mj
from memjax.models.config import StackConfig
from memjax.models.lm import CausalLM
from memjax.objectives import lookup, retrieval

SPECIAL = mj.SpecialIds(pad=0, eos=1, blank=2, sep=3)


def test_each_query_is_a_7gram_of_its_own_document_then_padding():
  tokens = np.arange(4 * 12).reshape(2, 24) + 10  # 4 documents of 12 distinct tokens
  mask = np.ones((2, 24), np.float32)
  mask[1, 12 + 6:] = 0  # the last document has 6 real tokens: no 7-gram
  view = retrieval.ngram_queries({"tokens": jnp.asarray(tokens), "mask": jnp.asarray(mask),
                                  "rng": jax.random.key(1)}, length=12, pad_id=0)
  documents, queries = np.asarray(view["documents"]), np.asarray(view["queries"])
  np.testing.assert_array_equal(documents, tokens.reshape(4, 12))
  np.testing.assert_array_equal(view["weights"], [1, 1, 1, 0])
  for d in range(3):
    start = int(np.flatnonzero(documents[d] == queries[d, 0])[0])
    np.testing.assert_array_equal(queries[d, :7], documents[d, start:start + 7])
    np.testing.assert_array_equal(queries[d, 7:], 0)


def test_infonce_matches_a_naive_cross_entropy_over_cosines():
  rng = np.random.default_rng(0)
  queries, documents = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
  weights = np.array([1, 1, 0, 1, 1], np.float32)
  loss, metrics = retrieval.infonce_loss({"queries": jnp.asarray(queries), "documents": jnp.asarray(documents)},
                                         {"weights": jnp.asarray(weights)})
  cos = np.array([[q @ d / np.linalg.norm(q) / np.linalg.norm(d) for d in documents] for q in queries])
  logits = cos / 0.02
  ce = [np.log(np.exp(logits[i] - logits[i].max()).sum()) + logits[i].max() - logits[i, i] for i in range(5)]
  kept = [i for i in range(5) if weights[i]]
  np.testing.assert_allclose(float(loss), np.mean([ce[i] for i in kept]), rtol=1e-4)
  np.testing.assert_allclose(float(metrics["accuracy"]), np.mean([cos[i].argmax() == i for i in kept]))
  assert float(metrics["chance"]) == pytest.approx(1 / 5) and float(metrics["examples"]) == 4


def test_stage_retrieval_reads_a_causal_lm_where_configured_with_or_without_its_base():
  cfg = mj.load_config("configs/clm.py", "smoke,family=transformer")
  cfg.objective.retrieval_index = -2
  alone = lookup.resolve("retrieval", cfg, special=SPECIAL)
  assert alone.name == "retrieval" and set(alone.loss.terms) == {"retrieval"}
  cfg.objective.retrieval_base = "clm"
  assert set(lookup.resolve("retrieval", cfg, special=SPECIAL).loss.terms) == {"clm", "retrieval"}
  model = CausalLM(StackConfig(family="transformer", d_model=8, n_layers=1, length=16, vocab_size=30,
                               n_heads=2), rngs=nnx.Rngs(0))
  view = {"documents": jnp.arange(32).reshape(2, 16) % 30, "queries": jnp.ones((2, 16), jnp.int32)}
  out = alone.forward_of("retrieval")(model, view)
  hidden = model.decoder(jnp.concatenate([view["documents"], view["queries"]]))  # the probed tower
  np.testing.assert_allclose(out["documents"], hidden[:2, -2], rtol=1e-6)
  np.testing.assert_allclose(out["queries"], hidden[2:, -2], rtol=1e-6)
  cfg.objective.retrieval_base = "retrieval"
  with pytest.raises(ValueError, match="another built-in objective"):
    lookup.resolve("retrieval", cfg, special=SPECIAL)
