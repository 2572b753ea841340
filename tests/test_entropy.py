import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.metrics import entropy


def test_uniform_logit_entropy_matches_the_paper_and_monte_carlo():
  assert entropy.uniform_logit_entropy(8000) == pytest.approx(9.03, abs=0.005)
  u = jax.random.uniform(jax.random.key(0), (4000, 8000))
  y = jax.random.randint(jax.random.key(1), (4000,), 0, 8000)
  monte_carlo = float(jnp.mean(jax.nn.logsumexp(u, -1) - u[jnp.arange(4000), y]))
  assert entropy.uniform_logit_entropy(8000) == pytest.approx(monte_carlo, abs=0.01)
  assert entropy.uniform_logit_entropy(512) < entropy.uniform_logit_entropy(8000)


def test_entropy_proportion_bits_per_byte_and_fraction_recovered():
  h0 = entropy.uniform_logit_entropy(8000)
  assert entropy.entropy_proportion(0.0, 8000) == 1.0
  assert entropy.entropy_proportion(h0, 8000) == pytest.approx(0.0)
  assert entropy.entropy_proportion(0.435, 8000) == pytest.approx(0.952, abs=1e-3)  # paper §5.1
  assert entropy.bits_per_byte(2.60, 3.92) == pytest.approx(0.957, abs=1e-3)  # paper §5.4
  assert entropy.fraction_recovered(2.5, 3.0, 2.0) == pytest.approx(0.5)


def one_hot_logits(predictions, vocab=5):
  return jax.nn.one_hot(jnp.asarray(predictions), vocab) * 10.0


def test_token_accuracy_shifted_and_unshifted_over_unmasked_positions():
  logits = one_hot_logits([[1, 2, 3, 4]])
  targets = jnp.array([[1, 2, 3, 0]])
  weights = jnp.array([[1.0, 1.0, 0.0, 1.0]])
  # Unshifted: positions 0, 1 right, 2 masked, 3 wrong.
  assert entropy.token_accuracy(logits, targets, weights, shift=False) == pytest.approx(2 / 3)
  # Shifted: prediction t vs target t+1: (1 vs 2 w1), (2 vs 3 w0), (3 vs 0 w1): none right.
  assert entropy.token_accuracy(logits, targets, weights, shift=True) == 0.0
  shifted_targets = jnp.array([[9, 1, 2, 3]]) % 5
  assert entropy.token_accuracy(logits, shifted_targets, jnp.ones((1, 4)), shift=True) == 1.0


def test_cross_entropy_excludes_masked_positions_from_mean_and_count():
  logits = jnp.zeros((1, 3, 4)).at[0, 2].set(jnp.array([0.0, 100.0, 0.0, 0.0]))
  metrics = entropy.token_cross_entropy(logits, jnp.array([[0, 0, 0]]), jnp.array([[1.0, 1.0, 0.0]]),
                                            shift=False)
  assert metrics["tokens"] == 2.0
  assert metrics["loss"] == pytest.approx(np.log(4.0), rel=1e-5)  # the masked position's huge loss is out


@pytest.mark.parametrize("shift", [True, False])
def test_cross_entropy_value_and_gradient_match_optax(shift):
  import optax

  logits = 3.0 * jax.random.normal(jax.random.key(0), (2, 5, 7))
  targets = jax.random.randint(jax.random.key(1), (2, 5), 0, 7)
  weights = jnp.array([[1.0, 1.0, 0.0, 1.0, 1.0], [1.0, 0.0, 1.0, 1.0, 1.0]])

  def reference(logits):
    logits, aligned_targets, aligned_weights = entropy.aligned(logits, targets, weights, shift=shift)
    per_token = optax.softmax_cross_entropy_with_integer_labels(logits, aligned_targets)
    return (per_token * aligned_weights).sum() / aligned_weights.sum()

  ours = lambda logits: entropy.token_cross_entropy(logits, targets, weights, shift=shift)["loss"]
  np.testing.assert_allclose(ours(logits), reference(logits), rtol=1e-6)
  np.testing.assert_allclose(jax.grad(ours)(logits), jax.grad(reference)(logits), atol=1e-7)


def test_both_cross_entropy_backward_passes_equal_optax_gradient():
  """The scatter (CPU) and the iota one-hot (TPU, GPU) backward passes, each against optax's."""
  import optax

  logits = 3.0 * jax.random.normal(jax.random.key(2), (2, 5, 7))
  targets = jax.random.randint(jax.random.key(3), (2, 5), 0, 7)
  scale = jax.random.uniform(jax.random.key(4), (2, 5))
  reference = jax.grad(lambda l: (optax.softmax_cross_entropy_with_integer_labels(l, targets) * scale).sum())
  log_normalizer = jax.nn.logsumexp(logits, axis=-1)
  for grad in (entropy.scattered_grad, entropy.onehot_grad):
    np.testing.assert_allclose(grad(logits, log_normalizer, targets, scale), reference(logits), atol=1e-6)
