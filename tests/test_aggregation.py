"""The numbers behind the tables: per-batch eval metrics aggregated over uneven, padded batches,
I_e and bits per byte, and the blank-copy objective, all against hand computations in numpy."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from memjax import objectives
from memjax.training import loop

VOCAB = 7
OBJECTIVE_CFG = ml_collections.ConfigDict(dict(clm_weight=1.0, copy_weight=1.0, copy_delimiter_tokens=0))


def fixed_model(logits_BxTxV):
  """A stand-in model: returns the given logits and records the inputs it was fed."""
  fed = []

  def model(tokens_BxT, mask_BxT=None):
    fed.append(np.asarray(tokens_BxT))
    return {"logits": jnp.asarray(logits_BxTxV)}

  return model, fed


def naive_cross_entropy(logits_BxTxV, targets_BxT, weights_BxT):
  """Per-position -log softmax(logits)[target], written out, and the weighted positions."""
  losses, hits = [], []
  for b in range(logits_BxTxV.shape[0]):
    for t in range(logits_BxTxV.shape[1]):
      if weights_BxT[b, t]:
        row = logits_BxTxV[b, t].astype(np.float64)
        losses.append(math.log(sum(math.exp(v) for v in row)) - row[targets_BxT[b, t]])
        hits.append(float(np.argmax(row) == targets_BxT[b, t]))
  return losses, hits


def padded_batches(rng):
  """Three eval batches with very different numbers of real tokens (right padding, pad id 0)."""
  lengths = ([8, 8], [3, 1], [8, 0])
  batches = []
  for batch_lengths in lengths:
    tokens = rng.integers(1, VOCAB, (2, 8))
    mask = np.zeros((2, 8), np.float32)
    for row, n in enumerate(batch_lengths):
      mask[row, :n] = 1.0
      tokens[row, n:] = 0
    logits = rng.normal(0, 2, (2, 8, VOCAB)).astype(np.float32)
    batches.append(({"tokens": jnp.asarray(tokens), "mask": jnp.asarray(mask)}, logits))
  return batches


@pytest.mark.parametrize("name,shift", [("clm", True), ("autoencode", False)])
def test_eval_metrics_are_token_weighted_over_uneven_padded_batches(name, shift):
  task = "autoencoder" if name == "autoencode" else "clm"
  objective = objectives.build(name, OBJECTIVE_CFG, task=task, blank_id=5, delimiter_id=6)
  term = "reconstruction" if name == "autoencode" else "clm"
  per_batch, pooled_losses, pooled_hits = [], [], []
  for batch, logits in padded_batches(np.random.default_rng(0)):
    model, _ = fixed_model(logits)
    _, metrics = objective(model, batch, jnp.zeros((), jnp.int32))
    per_batch.append({k: float(v) for k, v in jax.device_get(metrics).items()})
    tokens, mask = np.asarray(batch["tokens"]), np.asarray(batch["mask"])
    if shift:  # position t predicts token t+1, scored where token t+1 is real
      logits, tokens, mask = logits[:, :-1], tokens[:, 1:], mask[:, 1:]
    losses, hits = naive_cross_entropy(logits, tokens, mask)
    pooled_losses += losses
    pooled_hits += hits
  result = loop.aggregate(per_batch)
  assert result[f"{term}/tokens"] == len(pooled_losses)
  assert result[f"{term}/loss"] == pytest.approx(np.mean(pooled_losses), rel=1e-5)
  assert result[f"{term}/accuracy"] == pytest.approx(np.mean(pooled_hits), rel=1e-6)
  # The batches hold 15, 2 and 7 targets (causal), so a plain mean of batch means is different.
  plain_mean = np.mean([b[f"{term}/loss"] for b in per_batch])
  assert abs(plain_mean - np.mean(pooled_losses)) > 0.05


def test_entropy_proportion_and_bits_per_byte_by_hand():
  metrics = {"clm/loss": 2.0, "clm/tokens": 100.0, "copy/loss": 4.5, "copy/tokens": 50.0,
             "reg/loss": 0.1, "loss": 6.6}  # `reg` reports no tokens: not a token-level term
  result = loop.with_information(metrics, vocab_size=8000, bytes_per_token=4.0)
  # H0 for 8000 tokens is 9.03 nats (the paper's constant, to two decimals).
  assert result["clm/entropy_proportion"] == pytest.approx(1 - 2.0 / 9.03, abs=2e-4)
  assert result["copy/entropy_proportion"] == pytest.approx(1 - 4.5 / 9.03, abs=4e-4)
  # 2 nats per token = 2 / ln 2 = 2.885 bits per token over 4 bytes per token.
  assert result["clm/bits_per_byte"] == pytest.approx(0.721348, abs=1e-6)
  assert result["copy/bits_per_byte"] == pytest.approx(4.5 / 0.693147 / 4.0, abs=1e-5)
  assert "entropy_proportion" not in result and result["loss"] == 6.6  # the total is not a term
  assert "reg/entropy_proportion" not in result and "reg/bits_per_byte" not in result


def test_blank_copy_feeds_blanks_and_scores_only_the_copied_half():
  blank = 5
  tokens = np.array([[1, 2, 3, 4, 9, 9, 9, 9], [3, 3, 0, 0, 8, 8, 8, 8]])
  mask = np.array([[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 1, 1, 1, 1]], np.float32)
  # Logits that predict the copied half perfectly and the first half badly: if the first half were
  # scored, accuracy would fall below 1.
  logits = np.zeros((2, 8, 12), np.float32)
  copied = np.concatenate([tokens[:, :4], tokens[:, :4]], axis=1)  # what the view's targets are
  for b in range(2):
    for t in range(7):
      target = copied[b, t + 1]
      logits[b, t, target if t + 1 >= 4 else (target + 1) % 12] = 3.0
  objective = objectives.build("blank_copy", OBJECTIVE_CFG, task="memory", blank_id=blank, delimiter_id=6)
  model, fed = fixed_model(logits)
  _, metrics = objective(model, {"tokens": jnp.asarray(tokens), "mask": jnp.asarray(mask)},
                         jnp.zeros((), jnp.int32))
  np.testing.assert_array_equal(fed[0], [[1, 2, 3, 4, blank, blank, blank, blank],
                                         [3, 3, 0, 0, blank, blank, blank, blank]])
  # Targets: the copied half only, where the copied token is real (4 + 2 positions).
  assert float(metrics["blank_copy/tokens"]) == 6.0
  assert float(metrics["blank_copy/accuracy"]) == 1.0
  expected = math.log(11 + math.exp(3.0)) - 3.0  # one logit of 3 among 12, the rest 0
  assert float(metrics["blank_copy/loss"]) == pytest.approx(expected, rel=1e-6)
