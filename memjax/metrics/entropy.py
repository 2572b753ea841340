"""Token cross-entropy and what the paper derives from it (§1.3): how much of its input a model's
memory holds.

- token accuracy (the paper's "Hamming" metric): argmax equals target on unmasked positions,
  shifted by one for causal models and unshifted for autoencoders;
- cross-entropy in nats, and entropy proportion I_e = 1 - CE / H0, where H0 is the expected
  cross-entropy of uniform U[0, 1) logits over the vocabulary (about 9.03 nats for 8000 tokens);
- bits per byte, from the bytes per token measured on the data;
- fraction of memory loss recovered, (L_no-memory - L) / (L_no-memory - L_trainable-memory).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from memjax.kernels import placement


def aligned(logits_BxTxV: jax.Array, targets_BxT: jax.Array, weights_BxT: jax.Array, *,
            shift: bool) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Pairs each prediction with its target: position t predicts t+1 when `shift`, else t.

  Shifting moves the targets (the last position gets weight 0), not the logits: slicing [B, T, V]
  logits would copy them.
  """
  if shift:
    pad = lambda x: jnp.concatenate([x[:, 1:], jnp.zeros_like(x[:, :1])], axis=1)
    return logits_BxTxV, pad(targets_BxT), pad(weights_BxT)
  return logits_BxTxV, targets_BxT, weights_BxT


def token_accuracy(logits_BxTxV: jax.Array, targets_BxT: jax.Array, weights_BxT: jax.Array, *,
                   shift: bool) -> jax.Array:
  """Fraction of weighted positions whose argmax equals the target."""
  logits, targets, weights = aligned(logits_BxTxV, targets_BxT, weights_BxT, shift=shift)
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  return (correct * weights).sum() / jnp.maximum(weights.sum(), 1.0)


@jax.custom_vjp
def _cross_entropy_and_hits(logits: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-position cross-entropy, and 1.0 where the target's logit is the largest."""
  return _cross_entropy_fwd(logits, targets)[0]


def _cross_entropy_fwd(logits, targets):
  top = logits.max(axis=-1)
  log_normalizer = jnp.log(jnp.exp(logits - top[..., None]).sum(axis=-1)) + top
  target = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  hits = (target >= top).astype(jnp.float32)
  return (log_normalizer - target, hits), (logits, log_normalizer, targets)


def _cross_entropy_bwd(residuals, cotangents):
  """d CE / d logits = softmax - onehot, by the pass that is cheaper on the platform (below)."""
  logits, log_normalizer, targets = residuals
  scatter = placement.platform_of(logits) == "cpu"
  return (scattered_grad if scatter else onehot_grad)(logits, log_normalizer, targets, cotangents[0]), None


def scattered_grad(logits, log_normalizer, targets, scale):
  """One elementwise pass over the logits, then the targets' entries updated in place: cheaper on
  CPU than comparing every entry with its target."""
  grad = jnp.exp(logits - log_normalizer[..., None]) * scale[..., None]
  return grad.at[(*jnp.indices(targets.shape), targets)].add(-scale)


def onehot_grad(logits, log_normalizer, targets, scale):
  """The one-hot from an iota comparison inside the same fused pass: on TPU the scatter above is
  a separate pass that copies the [B, T, V] gradient (the paper transformer LM's loss backward on
  v5e: 2.57 GB accessed with it, 0.93 GB without; benchmarks/README.md)."""
  onehot = jax.lax.broadcasted_iota(targets.dtype, logits.shape, logits.ndim - 1) == targets[..., None]
  return (jnp.exp(logits - log_normalizer[..., None]) - onehot) * scale[..., None]


_cross_entropy_and_hits.defvjp(_cross_entropy_fwd, _cross_entropy_bwd)


def token_cross_entropy(logits_BxTxV: jax.Array, targets_BxT: jax.Array, weights_BxT: jax.Array, *,
                        shift: bool) -> dict[str, jax.Array]:
  """Weighted mean cross-entropy and token accuracy over the positions with weight > 0.

  Returns {'loss', 'accuracy', 'tokens'}; positions without a target count in neither mean nor count.
  Accuracy reuses the softmax's max: a position is right when its target's logit is the largest
  (the same as argmax == target except for exact ties), which saves a pass over the logits.
  """
  logits, targets, weights = aligned(logits_BxTxV, targets_BxT, weights_BxT, shift=shift)
  weights = weights.astype(jnp.float32)
  cross_entropy, hits = _cross_entropy_and_hits(logits.astype(jnp.float32), targets)
  tokens = weights.sum()
  denominator = jnp.maximum(tokens, 1.0)
  return {"loss": (cross_entropy * weights).sum() / denominator,
          "accuracy": (hits * weights).sum() / denominator, "tokens": tokens}


def uniform_logit_entropy(vocab_size: int) -> float:
  """H0 = E[-log softmax(u)_y] for u ~ U[0, 1)^V: the cross-entropy of an informationless model.

  E[-log softmax(u)_y] = E[log S] - E[u_y] with S = sum_j exp(u_j); S is a sum of V iid terms, so
  E[log S] = log E[S] - Var[S] / (2 E[S]^2) + O(1/V^2) by the delta method.
  """
  mean_exp = math.e - 1.0  # E[exp(u)]
  var_exp = (math.e**2 - 1.0) / 2.0 - mean_exp**2  # Var[exp(u)]
  log_sum = math.log(vocab_size * mean_exp) - var_exp / (2.0 * vocab_size * mean_exp**2)
  return log_sum - 0.5


def entropy_proportion(cross_entropy: float, vocab_size: int) -> float:
  """I_e = 1 - CE / H0: 1 for a perfect memory, 0 for an informationless one."""
  return 1.0 - cross_entropy / uniform_logit_entropy(vocab_size)


def bits_per_byte(cross_entropy: float, bytes_per_token: float) -> float:
  """Cross-entropy (nats per token) in bits per byte of text."""
  return cross_entropy / math.log(2.0) / bytes_per_token


def fraction_recovered(loss: float, no_memory_loss: float, trainable_memory_loss: float) -> float:
  """(L_no-memory - L) / (L_no-memory - L_trainable-memory): 1 matches trainable memories, 0 none."""
  return (no_memory_loss - loss) / (no_memory_loss - trainable_memory_loss)
