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


def decode(frozen, vectors_BxKxE, tokens_BxT):
  """A tiny nonlinear decoder reading no token: logits [B, T, V] = tanh(v W1) W2, per position."""
  hidden = jnp.tanh(vectors_BxKxE.reshape(vectors_BxKxE.shape[0], -1) @ frozen["w1"])
  return (hidden @ frozen["w2"]).reshape(-1, tokens_BxT.shape[1], V)


def problem(seed=0):
  keys = jax.random.split(jax.random.key(seed), 4)
  frozen = {"w1": jax.random.normal(keys[0], (K * E, 16)), "w2": jax.random.normal(keys[1], (16, T * V))}
  tokens = jax.random.randint(keys[2], (B, T), 0, V)
  init = 0.1 * jax.random.normal(keys[3], (B, K, E))
  return frozen, tokens, init


def naive_cram(frozen, tokens, init, max_steps, lr=cramming.LR, decode=decode):
  """Each text alone: AdamW on its own vector with its mean cross-entropy, stopped once its argmax
  tokens are all right (checked before each update), at most max_steps updates."""
  T = tokens.shape[1]
  tx = optax.adamw(lr)

  def loss(v, target):
    logp = jax.nn.log_softmax(decode(frozen, v, target)[0])
    return -sum(logp[t, target[0, t]] for t in range(T)) / T

  # jitted for speed only (one text's shapes); the loop, the stop and the update are each text's alone
  grad = jax.jit(jax.grad(loss))
  argmax = jax.jit(lambda v, target: jnp.argmax(decode(frozen, v, target)[0], -1))
  update = jax.jit(tx.update)
  out, steps = [], []
  for b in range(tokens.shape[0]):
    v = init[b:b + 1]
    opt = tx.init(v)
    target = tokens[b:b + 1]
    n = 0
    for _ in range(max_steps):
      if bool((argmax(v, target) == target[0]).all()):
        break
      updates, opt = update(grad(v, target), opt, v)
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
  tokens = tokens.at[0].set(jnp.argmax(decode(frozen, init, tokens)[0], -1))
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
  the information gain is the prior's summed CE minus the encoder's embedding's (from the forward
  pass), in bits."""
  from memjax.experiments import capacity as experiment

  cfg = StackConfig(family="mixer", d_model=8, n_layers=1, length=6, vocab_size=11, n_heads=1)
  model = Autoencoder(cfg, cfg, feed="unroll", rngs=nnx.Rngs(0))
  forward = jax.jit(lambda t: model(t)["logits"])  # one compile for the reference's forward passes
  tokens = jax.random.randint(jax.random.key(1), (3, 6), 0, 11)
  for _ in range(4):  # towards a fixed point of encode -> greedy decode (the encoder reads the tokens too)
    tokens = jnp.argmax(forward(tokens), -1)
  logits = forward(tokens)
  exact = (jnp.argmax(logits, -1) == tokens).all(1)
  measured = experiment.measure(model, np.asarray(tokens), np.ones((3, 6), np.float32), max_steps=2,
                                prior_steps=3)
  np.testing.assert_array_equal(measured["trained"]["exact_match"], np.asarray(exact))
  assert exact.any()
  pick = lambda logp: np.take_along_axis(np.asarray(logp), np.asarray(tokens)[..., None], -1)[..., 0]
  own_bits = -pick(jax.nn.log_softmax(logits)).sum(1) / math.log(2)
  trained = measured["trained"]
  np.testing.assert_allclose(trained["information_bits"], trained["baseline_bits"] - own_bits, rtol=1e-4, atol=1e-4)
  assert set(np.round(trained["baseline_bits"], 3)) <= set(np.round(trained["prior_bits"], 3)) | {round(6 * math.log2(11), 3)}
  # one prior for both methods: the same decoder's
  np.testing.assert_allclose(measured["crammed"]["prior_bits"], trained["prior_bits"], rtol=1e-6)
  assert measured["crammed"]["steps"].shape == (3,) and (measured["crammed"]["steps"] <= 2).all()


def unigram_decode(frozen, vectors_BxKxE, tokens_BxT):
  """A decoder whose logits at every position are its one input vector (E = V): its best
  text-independent input is the log of the texts' token frequencies."""
  return jnp.broadcast_to(vectors_BxKxE[:, :1], (vectors_BxKxE.shape[0], tokens_BxT.shape[1], vectors_BxKxE.shape[2]))


def test_prior_reaches_the_entropy_of_the_token_frequencies_and_beats_uniform():
  tokens = jnp.array([[0, 0, 1, 2], [0, 3, 3, 0], [1, 0, 0, 0]])
  counts = np.bincount(np.asarray(tokens).ravel(), minlength=V) / tokens.size
  entropy = -sum(p * math.log(p) for p in counts if p > 0)  # nats per token, by hand
  prior = cramming.prior(unigram_decode, None, tokens, jnp.zeros((1, 1, V)), steps=3000, lr=0.05)
  logp = jax.nn.log_softmax(prior[0, 0])
  mean_ce = -np.mean([float(logp[t]) for t in np.asarray(tokens).ravel()])
  assert mean_ce == pytest.approx(entropy, abs=2e-3)
  assert mean_ce < math.log(V)  # the uniform start, improved on
  np.testing.assert_allclose(np.exp(np.asarray(logp)), counts, atol=0.01)
  with pytest.raises(ValueError, match=r"\[1, K, E\]"):
    cramming.prior(unigram_decode, None, tokens, jnp.zeros((2, 1, V)))


def test_information_gain_is_against_the_prior_or_uniform_whichever_is_better():
  """score's per-text numbers on the hand-built decoder, by hand: gain = baseline CE - own CE <= baseline
  CE, the baseline being the prior where it beats uniform on the set, else uniform (log2 5 bits a token)."""
  from memjax.experiments import capacity as experiment

  tokens = np.array([[0, 0, 1, 2], [0, 0, 0, 0]])
  own = jnp.stack([jnp.log(jnp.array([0.5, 0.25, 0.25, 1e-9, 1e-9])), 10.0 * jax.nn.one_hot(0, V)])[:, None]
  own_bits = [1 + 1 + 2 + 2, -4 * float(jax.nn.log_softmax(own[1, 0])[0]) / math.log(2)]
  good = jnp.log(jnp.array([0.5, 0.125, 0.125, 0.125, 0.125]))[None, None]  # 8 and 4 bits: below uniform
  scores = experiment.score(unigram_decode, None, own, good, tokens, np.ones(tokens.shape))
  np.testing.assert_allclose(scores["prior_bits"], [1 + 1 + 3 + 3, 4], rtol=1e-5)
  np.testing.assert_allclose(scores["information_bits"], np.array([8, 4]) - own_bits, rtol=1e-4)
  assert (scores["information_bits"] <= scores["baseline_bits"]).all()
  np.testing.assert_array_equal(scores["exact_match"], [False, True])  # greedy: 0 0 0 0 twice
  np.testing.assert_allclose(scores["recovered"], [0.5, 1.0])
  bad = jnp.log(jnp.array([0.01, 0.01, 0.01, 0.01, 0.96]))[None, None]  # worse than uniform on the set
  scores = experiment.score(unigram_decode, None, own, bad, tokens, np.ones(tokens.shape))
  np.testing.assert_allclose(scores["baseline_bits"], [4 * math.log2(V)] * 2, rtol=1e-6)
  np.testing.assert_allclose(scores["information_bits"], 4 * math.log2(V) - np.array(own_bits), rtol=1e-4)


def tiny_lm(seed=0):
  from memjax.models.lm import CausalLM

  cfg = StackConfig(family="transformer", d_model=8, n_layers=1, length=8, vocab_size=11, n_heads=2)
  return CausalLM(cfg, rngs=nnx.Rngs(seed))


def test_prefix_decoder_and_greedy_match_the_lm_reading_a_prompt():
  """k vectors that are the embeddings of k prompt tokens: the prefix decoder's logits are the LM's own
  forward pass on [prompt][text], and greedy generation is the LM's, token by token."""
  lm = tiny_lm()
  graphdef, params = nnx.split(lm, nnx.Param)
  decode = cramming.prefix_decoder(graphdef)
  prompt = jnp.array([[3, 7], [1, 1]])
  text = jax.random.randint(jax.random.key(2), (2, 5), 0, 11)
  vectors = lm.decoder.embed(prompt)
  forward = jax.jit(lambda p, t: nnx.merge(graphdef, p)(t)["logits"])
  whole = forward(params, jnp.concatenate([prompt, text], 1))
  np.testing.assert_allclose(decode(params, vectors, text), whole[:, 1:-1], rtol=1e-5, atol=1e-5)
  generated = prompt
  for _ in range(5):  # the naive loop: the whole forward pass on the sequence so far
    generated = jnp.concatenate([generated, jnp.argmax(forward(params, generated)[:, -1], -1)[:, None]], 1)
  np.testing.assert_array_equal(cramming.greedy(decode, params, vectors, 5), generated[:, 2:])


def test_batched_cramming_into_a_causal_lm_matches_each_text_alone():
  lm = tiny_lm(1)
  graphdef, params = nnx.split(lm, nnx.Param)
  decode = cramming.prefix_decoder(graphdef)
  tokens = jax.random.randint(jax.random.key(3), (3, 3), 0, 11)
  init = jax.random.normal(jax.random.key(4), (3, 2, 8))
  # text 0: what the LM already generates from its initial vectors (it never moves); the others train
  tokens = tokens.at[0].set(cramming.greedy(decode, params, init[:1], 3)[0])
  crammed = cramming.cram(decode, params, tokens, init, max_steps=25, lr=0.1)
  vectors, steps = naive_cram(params, tokens, init, 25, lr=0.1, decode=decode)
  np.testing.assert_array_equal(np.asarray(crammed.steps), steps)
  np.testing.assert_allclose(np.asarray(crammed.vectors), vectors, rtol=1e-4, atol=1e-5)
  assert steps[0] == 0 and (steps[1:] > 0).all()
