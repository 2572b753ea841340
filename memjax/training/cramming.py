"""Cramming (Kuratov et al., ACL 2025): per-text input vectors optimised so that a frozen decoder
regenerates each text, the upper bound of what one memory of that decoder can hold.

The vectors [B, K, E] are the only trainable pytree; the decoder's parameters are an input of the
jitted step that is never differentiated. Every text's loss is its own mean cross-entropy and the
batch loss is their sum, so each text's gradient (and AdamW moments) is exactly that of optimising it
alone. A text stops (its vectors and moments no longer change) once its teacher-forced token accuracy
reaches 1.0, as in the paper; the loop ends when every text stopped or after `max_steps`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

# decode(frozen, vectors_BxKxE, length) -> logits [B, length, V]
Decode = Callable[[Any, jax.Array, int], jax.Array]
LR = 0.01  # the paper's AdamW learning rate


@flax.struct.dataclass
class CramState:
  vectors: jax.Array  # [B, K, E]
  opt_state: optax.OptState
  active: jax.Array  # [B] bool: still being optimised
  steps: jax.Array  # [B] int32: updates each text received
  accuracy: jax.Array  # [B] teacher-forced token accuracy at the vectors before the last step
  loss: jax.Array  # [B] mean cross-entropy (nats) at the same vectors


def optimizer(lr: float = LR) -> optax.GradientTransformation:
  return optax.adamw(lr)


def text_losses(logits_BxTxV: jax.Array, tokens_BxT: jax.Array,
                mask_BxT: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(mean cross-entropy [B] in nats, token accuracy [B]) of each text over its unmasked tokens."""
  ce_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV.astype(jnp.float32), tokens_BxT)
  right_BxT = (jnp.argmax(logits_BxTxV, -1) == tokens_BxT).astype(jnp.float32)
  count_B = jnp.maximum(mask_BxT.sum(1), 1.0)
  return (ce_BxT * mask_BxT).sum(1) / count_B, (right_BxT * mask_BxT).sum(1) / count_B


def init(vectors_BxKxE: jax.Array, tx: optax.GradientTransformation) -> CramState:
  B = vectors_BxKxE.shape[0]
  return CramState(vectors_BxKxE, tx.init(vectors_BxKxE), jnp.ones(B, bool), jnp.zeros(B, jnp.int32),
                   jnp.zeros(B, jnp.float32), jnp.full(B, jnp.inf, jnp.float32))


def make_step(decode: Decode, tx: optax.GradientTransformation) -> Callable[..., CramState]:
  """The jitted step (frozen, state, tokens_BxT, mask_BxT) -> state: one AdamW update of every text
  still below full accuracy (measured at the vectors it is given)."""

  def step(frozen: Any, state: CramState, tokens_BxT: jax.Array, mask_BxT: jax.Array) -> CramState:
    length = tokens_BxT.shape[1]

    def loss_fn(vectors):
      loss_B, accuracy_B = text_losses(decode(frozen, vectors, length), tokens_BxT, mask_BxT)
      return loss_B.sum(), (loss_B, accuracy_B)

    (_, (loss_B, accuracy_B)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.vectors)
    active_B = state.active & (accuracy_B < 1.0)
    updates, opt_state = tx.update(grads, state.opt_state, state.vectors)
    vectors = optax.apply_updates(state.vectors, updates)

    def keep(new, old):  # per-text leaves (the vectors' shape) stay put where a text stopped
      if getattr(new, "shape", None) != state.vectors.shape:
        return new
      return jnp.where(active_B[:, None, None], new, old)

    return CramState(keep(vectors, state.vectors), jax.tree.map(keep, opt_state, state.opt_state), active_B,
                     state.steps + active_B.astype(jnp.int32), accuracy_B, loss_B)

  return jax.jit(step)


@dataclasses.dataclass(frozen=True)
class Crammed:
  vectors: jax.Array  # [B, K, E]
  steps: jax.Array  # [B] updates each text received
  stopped: jax.Array  # [B] bool: at full teacher-forced accuracy (within max_steps updates)


def cram(decode: Decode, frozen: Any, tokens_BxT: jax.Array, init_BxKxE: jax.Array, *,
         mask_BxT: jax.Array | None = None, max_steps: int = 1000, lr: float = LR) -> Crammed:
  """Optimises `init_BxKxE` so that decode(frozen, vectors) regenerates `tokens_BxT`, every text
  early-stopped at full teacher-forced accuracy, at most `max_steps` updates."""
  if init_BxKxE.ndim != 3 or init_BxKxE.shape[0] != tokens_BxT.shape[0]:
    raise ValueError(f"initial vectors must be [B, K, E] with B = {tokens_BxT.shape[0]} texts, got "
                     f"{init_BxKxE.shape}")
  if max_steps < 1:
    raise ValueError(f"max_steps must be at least 1, got {max_steps}")
  mask_BxT = jnp.ones(tokens_BxT.shape, jnp.float32) if mask_BxT is None else mask_BxT.astype(jnp.float32)
  tx = optimizer(lr)
  step = make_step(decode, tx)
  state = init(jnp.asarray(init_BxKxE, jnp.float32), tx)
  for _ in range(max_steps):
    state = step(frozen, state, tokens_BxT, mask_BxT)
    if not bool(state.active.any()):
      break
  # A last look at the final vectors: texts whose last update reached full accuracy stopped too.
  _, accuracy_B = text_losses(decode(frozen, state.vectors, tokens_BxT.shape[1]), tokens_BxT, mask_BxT)
  return Crammed(state.vectors, state.steps, accuracy_B >= 1.0)
