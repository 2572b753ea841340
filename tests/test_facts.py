"""The facts task (issue 21 §3): its generator, its metric by distance and its experiment's plan,
checked against hand-built expectations."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from memjax.data import facts
from memjax.metrics.distance import by_distance

K, L, B = 4, 8, 6
N = K * L
SEP, EOS, PAD, BLANK, V = 3, 1, 0, 2, 50
SPECIAL = (PAD, EOS, BLANK, SEP)
F = 5  # [SEP, X, SEP, Y1, Y2]: these tests plant 2-token answers


def planted(seed=0, text=EOS, mask=1.0, **task):
  # Text of one special id only, so that a planted word can be found by value.
  tokens = jnp.full((B, N), text, jnp.int32)
  return tokens, facts.plant(tokens, jnp.full((B, N), mask), jax.random.key(seed), chunks=K,
                             marker_id=SEP, vocab_size=V, special_ids=SPECIAL, **({"answer_tokens": 2} | task))


def test_fact_sits_in_the_stated_chunk_and_the_question_ends_the_last():
  tokens, out = planted()
  inputs = np.asarray(out["inputs"])
  assert list(np.asarray(out["distance"])) == [1, 2, 3, 1, 2, 3]  # cycling 1..K-1 by hand
  for b in range(B):
    start, d = int(out["fact_start"][b]), int(out["distance"][b])
    assert start // L == K - 1 - d and (start + F - 1) // L == K - 1 - d  # whole fact in chunk K-1-d
    fact = inputs[b, start:start + F]
    assert fact[0] == SEP and fact[2] == SEP and not set(fact[[1, 3, 4]]) & set(SPECIAL)
    assert (fact[[1, 3, 4]] < V).all()
    np.testing.assert_array_equal(inputs[b, N - F:], fact)  # the question [SEP, X, SEP] + answer Y
    untouched = np.ones(N, bool)
    untouched[start:start + F] = untouched[N - F:] = False
    assert (inputs[b, untouched] == EOS).all()  # the text is kept everywhere else
  np.testing.assert_array_equal(out["targets"], out["inputs"])


def test_answer_weights_are_exactly_the_answer_tokens():
  _, out = planted()
  expected = np.zeros((B, N))
  expected[:, N - 2:] = 1.0  # Y1 and Y2, the last two positions (by hand)
  np.testing.assert_array_equal(out["weights"], expected)


def test_answers_come_from_the_first_answer_ids_non_special_ids():
  _, out = planted(seed=3, answer_ids=4, answer_tokens=1, key_tokens=1)
  inputs = np.asarray(out["inputs"])
  answers = inputs[:, N - 1]  # the one answer token ends each row
  assert set(answers) <= {4, 5, 6, 7}  # ids 0..3 are SPECIAL, so the first 4 others are 4..7
  expected = np.zeros((B, N))
  expected[:, N - 1] = 1.0
  np.testing.assert_array_equal(out["weights"], expected)
  assert (inputs[:, N - 4] == SEP).all() and (inputs[:, N - 2] == SEP).all()  # [SEP, X, SEP] then Y
  many = np.concatenate([np.asarray(planted(seed=s, answer_ids=4, answer_tokens=1)[1]["inputs"])[:, N - 1]
                         for s in range(8)])
  assert set(many) == {4, 5, 6, 7}  # 48 draws of 4 ids: every id drawn (missing one: 4 (3/4)^48 ~ 4e-6)


def test_answer_is_not_visible_in_the_decoders_own_chunk():
  _, out = planted()
  inputs = np.asarray(out["inputs"])
  for b in range(B):
    answer = set(inputs[b, N - 2:])
    own_chunk_before_answer = inputs[b, (K - 1) * L:N - 2]
    assert not answer & set(own_chunk_before_answer)  # only [SEP, X, SEP] and text there
    assert int(out["fact_start"][b]) < (K - 1) * L


def test_planted_tokens_are_attended_even_where_the_text_was_padding():
  _, out = planted(mask=0.0)
  mask = np.asarray(out["input_mask"])
  for b in range(B):
    start = int(out["fact_start"][b])
    assert mask[b, start:start + F].all() and mask[b, N - F:].all()
    assert mask[b].sum() == 2 * F


def test_deterministic_per_seed():
  _, first = planted(seed=7)
  _, again = planted(seed=7)
  _, other = planted(seed=8)
  for key in first:
    np.testing.assert_array_equal(first[key], again[key])
  assert not np.array_equal(first["inputs"], other["inputs"])


def test_bad_shapes_are_named():
  tokens = jnp.zeros((2, 12), jnp.int32)
  kwargs = dict(marker_id=SEP, vocab_size=V, special_ids=SPECIAL)
  with pytest.raises(ValueError, match="not divisible into 5 chunks"):
    facts.plant(tokens, jnp.ones((2, 12)), jax.random.key(0), chunks=5, **kwargs)
  with pytest.raises(ValueError, match="does not fit a chunk of 3"):
    facts.plant(tokens, jnp.ones((2, 12)), jax.random.key(0), chunks=4, **kwargs)
  with pytest.raises(ValueError, match="at least 2 chunks"):
    facts.plant(tokens, jnp.ones((2, 12)), jax.random.key(0), chunks=1, **kwargs)
  with pytest.raises(ValueError, match="47 answer ids asked of 46 non-special ids"):
    facts.plant(tokens, jnp.ones((2, 12)), jax.random.key(0), chunks=2, answer_ids=47, **kwargs)


def test_accuracy_by_distance_by_hand():
  # 3 rows (distances 1, 2, 1), 3 positions, 4 classes; position t's logits predict target t+1.
  logits = np.full((3, 3, 4), -5.0, np.float32)
  targets = np.array([[0, 1, 2], [0, 3, 3], [0, 1, 0]])
  weights = np.array([[0, 1, 1], [0, 1, 1], [0, 0, 1]], np.float32)
  logits[0, 0, 1] = logits[0, 1, 2] = 5.0  # row 0 (d=1): both right
  logits[1, 0, 3] = logits[1, 1, 0] = 5.0  # row 1 (d=2): first right, second wrong
  logits[2, 1, 3] = 5.0  # row 2 (d=1): its one target (0) wrong
  out = by_distance(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(weights),
                    jnp.array([1, 2, 1]), [1, 2, 3])
  assert float(out["d1/tokens"]) == 3 and float(out["d1/accuracy"]) == pytest.approx(2 / 3)
  assert float(out["d2/tokens"]) == 2 and float(out["d2/accuracy"]) == pytest.approx(1 / 2)
  assert float(out["d3/tokens"]) == 0 and float(out["d3/accuracy"]) == 0.0
  # d=2 cross-entropy by hand: a right token -log(e^5 / (e^5 + 3 e^-5)), a wrong one -log(e^-5 / (...))
  right, wrong = np.log1p(3 * np.exp(-10.0)), 10.0 + np.log1p(3 * np.exp(-10.0))
  assert float(out["d2/loss"]) == pytest.approx((right + wrong) / 2, rel=1e-5)


def test_the_answer_reaches_a_memory_model_only_through_its_memories():
  """Changing the fact's chunk moves the answer logits of a memory model, not those of its no-memory
  control (its last chunk is decoded from its own tokens alone)."""
  from memjax.models.config import StackConfig
  from memjax.models.memory import MemoryModel

  def config(length, d=16):
    return StackConfig(family="transformer", d_model=d, n_layers=1, length=length, vocab_size=V, n_heads=2)

  _, out = planted(text=10)
  inputs = out["inputs"]
  moved = inputs.at[0, int(out["fact_start"][0]) + 3].set(11)  # another Y1 in row 0's fact
  for encoder, expect_change in ((config(L, 8), True), (None, False)):
    model = MemoryModel(encoder, config(K - 1 + L), chunks=K, rngs=nnx.Rngs(0))
    answer_logits = lambda x: model(x)["logits"][0, N - 3:N - 1]  # noqa: E731 (predicting Y1, Y2)
    changed = not np.allclose(answer_logits(inputs), answer_logits(moved))
    assert changed == expect_change


def test_objective_scores_answers_by_distance_and_names_bad_configs():
  from memjax.data import OWN_SPECIAL_IDS
  from memjax.objectives import facts as facts_objective

  cfg = ml_collections.ConfigDict({"memory": {"chunks": K}, "data": {"vocab_size": V},
                                   "objective": {"facts": {"answer_tokens": 2, "answer_ids": 5}}})
  objective = facts_objective.objective(cfg, OWN_SPECIAL_IDS)
  batch = {"tokens": jnp.full((B, N), 10, jnp.int32), "mask": jnp.ones((B, N)), "rng": jax.random.key(0)}
  viewed = objective.views["facts"](batch)
  logits = jax.nn.one_hot(jnp.roll(viewed["targets"], -1, axis=1), V) * 10  # a perfect predictor
  _, metrics = objective.loss({"facts": {"logits": logits}}, {"facts": viewed}, jnp.zeros((), jnp.int32))
  assert float(metrics["facts/tokens"]) == 2 * B and float(metrics["facts/accuracy"]) == 1.0
  assert all(float(metrics[f"facts/d{d}/tokens"]) == 4 for d in (1, 2, 3))  # 2 rows x 2 tokens each
  specials = (OWN_SPECIAL_IDS.pad, OWN_SPECIAL_IDS.eos, OWN_SPECIAL_IDS.blank, OWN_SPECIAL_IDS.sep)
  first_five = set(np.setdiff1d(np.arange(V), specials)[:5])  # the config's answer_ids
  assert set(np.asarray(viewed["targets"])[:, N - 2:].ravel()) <= first_five
  with pytest.raises(ValueError, match="needs a memory-model config"):
    facts_objective.objective(ml_collections.ConfigDict({"data": {"vocab_size": V}}), OWN_SPECIAL_IDS)


def test_tiny_plan_continues_the_curriculum_and_trains_every_row_on_facts(tmp_path):
  from memjax.experiments import facts as experiment, suite
  from memjax.objectives import facts as facts_objective

  specs = {s.name: s for s in suite.plan(experiment.EXPERIMENT, "tiny", tmp_path)}
  rows = [f"mixer_{suffix}" for _, suffix, _, _ in experiment.ROWS]
  assert set(rows) <= set(specs)
  assert {specs[name].cfg.objective.stages for name in rows} == {facts_objective.STAGE}
  assert [specs[name].cfg.memory.kind for name in rows] == [kind for _, _, kind, _ in experiment.ROWS]
  frozen = specs["mixer_facts_frozen_ae"].cfg
  assert frozen.train.init_from == str(suite.run_dir(tmp_path, "mixer_curriculum_frozen_ae"))
  assert frozen.encoder.frozen and frozen.encoder.checkpoint.endswith("mixer_autoencoder")
  assert "mixer_curriculum_frozen_ae" in specs and not specs["mixer_facts_trainable"].cfg.encoder.frozen
  cpu = {s.name: s for s in suite.plan(experiment.EXPERIMENT, "cpu", tmp_path)}
  for name in rows:  # every row is scored on the same task and held-out answers
    assert cpu[name].cfg.objective.facts.to_dict() == {"answer_ids": 32, "answer_tokens": 1}
    assert cpu[name].cfg.train.eval_batches == 32 and cpu[name].cfg.train.steps == 1000


def test_report_reads_accuracy_by_distance_from_eval_keys():
  from memjax.experiments import facts as experiment

  metrics = {"facts/accuracy": 0.5, "facts/d10/accuracy": 0.1, "facts/d2/accuracy": 0.2,
             "facts/d2/tokens": 4.0}
  assert experiment.accuracy_by_distance(metrics) == {2: 0.2, 10: 0.1}


def test_report_tables_each_row_by_distance_and_draws_the_figure(tmp_path):
  from memjax.experiments import facts as experiment, suite

  class Context:  # what report reads of suite.Context: scale, out and each run's final evaluation
    scale, out = "tiny", tmp_path

    @staticmethod
    def eval(name):
      row = [f"mixer_{suffix}" for _, suffix, _, _ in experiment.ROWS].index(name)
      return {"facts/accuracy": row / 8, "facts/loss": 5.0 - row, "facts/d1/accuracy": row / 8 + 1 / 64,
              "facts/d2/accuracy": row / 8 + 2 / 64, "facts/d3/accuracy": row / 8 + 3 / 64}

  summary = experiment.report(Context())
  assert [r["model"] for r in summary["rows"]] == [label for label, *_ in experiment.ROWS]
  assert summary["rows"][4]["accuracy_by_distance"] == {"1": 0.515625, "2": 0.53125, "3": 0.546875}
  assert "| mixer | full context | 0.5156 | 0.5312 | 0.5469 | 0.5000 | 1.000 |" in summary["table"]
  assert (tmp_path / "facts.png").stat().st_size > 5_000
  found = {f["finding"]: (f["ours"], f["than"], f["paper"]) for f in experiment.findings(summary)}
  assert found == {"mixer answer acc.: full context vs no memory": (0.5, 0.375, "more"),
                   "mixer answer acc.: parallel, trainable encoder vs no memory": (0.0, 0.375, "more"),
                   "mixer answer acc.: parallel, frozen autoencoder (after copy curriculum) vs no memory":
                   (0.125, 0.375, "more"),
                   "mixer answer acc.: full context vs parallel, trainable encoder": (0.5, 0.0, "more")}
