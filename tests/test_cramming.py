"""Cramming (training/cramming.py) and the capacity metrics (metrics/capacity.py)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from memjax.metrics import capacity
from memjax.models.autoencoder import Autoencoder
from memjax.models.config import StackConfig
from memjax.training import cramming

B, K, E, T, V = 4, 1, 6, 3, 5


def decode(frozen, vectors_BxKxE, length):
  """A tiny nonlinear decoder: logits [B, length, V] = tanh(v W1) W2, per position."""
  hidden = jnp.tanh(vectors_BxKxE.reshape(vectors_BxKxE.shape[0], -1) @ frozen["w1"])
  return (hidden @ frozen["w2"]).reshape(-1, length, V)


def problem(seed=0):
  keys = jax.random.split(jax.random.key(seed), 4)
  frozen = {"w1": jax.random.normal(keys[0], (K * E, 16)), "w2": jax.random.normal(keys[1], (16, T * V))}
  tokens = jax.random.randint(keys[2], (B, T), 0, V)
  init = 0.1 * jax.random.normal(keys[3], (B, K, E))
  return frozen, tokens, init


def naive_cram(frozen, tokens, init, max_steps, lr=cramming.LR):
  """Each text alone: AdamW on its own vector with its mean cross-entropy, stopped once its argmax
  tokens are all right (checked before each update), at most max_steps updates."""
  tx = optax.adamw(lr)
  out, steps = [], []
  for b in range(tokens.shape[0]):
    v = init[b:b + 1]
    opt = tx.init(v)
    target = tokens[b:b + 1]

    def loss(v):
      logp = jax.nn.log_softmax(decode(frozen, v, T)[0])
      return -sum(logp[t, target[0, t]] for t in range(T)) / T

    n = 0
    for _ in range(max_steps):
      if bool((jnp.argmax(decode(frozen, v, T)[0], -1) == target[0]).all()):
        break
      updates, opt = tx.update(jax.grad(loss)(v), opt, v)
      v, n = optax.apply_updates(v, updates), n + 1
    out.append(v[0])
    steps.append(n)
  return np.stack(out), np.array(steps)


def test_batched_cramming_matches_each_text_optimised_alone():
  frozen, tokens, init = problem()
  for max_steps in (3, 120):  # no text stopped yet; texts stopped at different steps
    crammed = cramming.cram(decode, frozen, tokens, init, max_steps=max_steps)
    vectors, steps = naive_cram(frozen, tokens, init, max_steps)
    np.testing.assert_array_equal(np.asarray(crammed.steps), steps)
    np.testing.assert_allclose(np.asarray(crammed.vectors), vectors, rtol=1e-5, atol=1e-6)
  assert len(set(steps.tolist())) > 1 and steps.max() < 120  # the case exercises the per-text stop
  np.testing.assert_array_equal(np.asarray(crammed.stopped), steps < 120)


def test_a_text_already_regenerated_is_never_updated():
  frozen, tokens, init = problem(1)
  # text 0's target: what the decoder already generates from its initial vector
  tokens = tokens.at[0].set(jnp.argmax(decode(frozen, init, T)[0], -1))
  crammed = cramming.cram(decode, frozen, tokens, init, max_steps=5)
  assert int(crammed.steps[0]) == 0 and bool(crammed.stopped[0])
  np.testing.assert_array_equal(np.asarray(crammed.vectors[0]), np.asarray(init[0]))
  assert (np.asarray(crammed.steps[1:]) > 0).all()


def test_masked_tokens_give_no_gradient():
  frozen, tokens, init = problem()
  tx = cramming.optimizer()
  step = cramming.make_step(decode, tx)
  mask = jnp.ones((B, T)).at[:, -1].set(0.0)
  a = step(frozen, cramming.init(init, tx), tokens, mask)
  b = step(frozen, cramming.init(init, tx), tokens.at[:, -1].set((tokens[:, -1] + 1) % V), mask)
  np.testing.assert_allclose(np.asarray(a.vectors), np.asarray(b.vectors))


def test_bad_initial_vectors_are_named():
  frozen, tokens, init = problem()
  with pytest.raises(ValueError, match=r"\[B, K, E\]"):
    cramming.cram(decode, frozen, tokens, init[:, 0], max_steps=1)


def test_autoencoder_decode_is_its_forward_pass_from_an_embedding():
  cfg = StackConfig(family="mixer", d_model=8, n_layers=1, length=6, vocab_size=11, n_heads=1)
  model = Autoencoder(cfg, cfg, feed="unroll", rngs=nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(0), (2, 6), 0, 11)
  out = model(tokens)
  np.testing.assert_allclose(model.decode(out["embedding"], 6), out["logits"], rtol=1e-6)


def test_ceiling_by_hand():
  assert capacity.ceiling_bits(4) == 64
  assert capacity.ceiling_tokens(4, 256) == 8.0  # 64 bits / 8 bits per token
  assert capacity.ceiling_tokens(1024, 8000) == pytest.approx(16384 / 12.965784, rel=1e-6)
  with pytest.raises(ValueError, match="vocabulary"):
    capacity.ceiling_tokens(4, 1)


def test_greedy_recovery_and_exact_match_on_a_hand_made_case():
  tokens = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [5, 5, 5, 5]])
  generated = np.array([[1, 2, 3, 4], [1, 2, 0, 4], [5, 5, 5, 0]])
  fraction, exact = capacity.recovered(generated, tokens)
  np.testing.assert_allclose(fraction, [1.0, 0.75, 0.75])
  np.testing.assert_array_equal(exact, [True, False, False])
  # a masked (padding) position counts neither way
  fraction, exact = capacity.recovered(generated, tokens, np.array([[1, 1, 1, 1], [1, 1, 0, 1], [1, 1, 1, 1]]))
  np.testing.assert_allclose(fraction, [1.0, 1.0, 0.75])
  np.testing.assert_array_equal(exact, [True, True, False])


def test_information_gain_and_capacity_by_hand():
  without = np.array([[math.log(8), math.log(8)], [1.0, 1.0]])
  with_memory = np.array([[0.0, math.log(2)], [1.0, 2.0]])
  np.testing.assert_allclose(capacity.information_gain_bits(without, with_memory), [3 + 2, -1 / math.log(2)])
  assert capacity.capacity([4, 8, 16], [1.0, 0.995, 0.5]) == 8
  assert capacity.capacity([4, 8], [0.9, 0.5]) is None


def test_capacity_measure_scores_the_encoders_own_generation_as_exact():
  """The experiment's per-text numbers on an untrained tiny autoencoder, against its forward pass:
  texts set to what the decoder generates from their encoder's embedding are recovered exactly, and
  the information gain is the summed CE from a zero embedding minus from the encoder's, in bits."""
  from memjax.experiments import capacity as experiment

  cfg = StackConfig(family="mixer", d_model=8, n_layers=1, length=6, vocab_size=11, n_heads=1)
  model = Autoencoder(cfg, cfg, feed="unroll", rngs=nnx.Rngs(0))
  forward = jax.jit(lambda t: model(t)["logits"])  # one compile for the reference's forward passes
  tokens = jax.random.randint(jax.random.key(1), (3, 6), 0, 11)
  for _ in range(4):  # towards a fixed point of encode -> greedy decode (the encoder reads the tokens too)
    tokens = jnp.argmax(forward(tokens), -1)
  logits = forward(tokens)
  exact = (jnp.argmax(logits, -1) == tokens).all(1)
  measured = experiment.measure(model, np.asarray(tokens), np.ones((3, 6), np.float32), max_steps=2)
  np.testing.assert_array_equal(measured["trained"]["exact_match"], np.asarray(exact))
  assert exact.any()
  logp_with = jax.nn.log_softmax(logits)
  logp_without = jax.nn.log_softmax(model.decode(jnp.zeros((3, 8)), 6))
  pick = lambda logp: np.take_along_axis(np.asarray(logp), np.asarray(tokens)[..., None], -1)[..., 0]
  bits = (pick(logp_with) - pick(logp_without)).sum(1) / math.log(2)
  np.testing.assert_allclose(measured["trained"]["information_bits"], bits, rtol=1e-4, atol=1e-4)
  assert measured["crammed"]["steps"].shape == (3,) and (measured["crammed"]["steps"] <= 2).all()
