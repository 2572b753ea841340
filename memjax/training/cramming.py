"""Cramming (Kuratov et al., ACL 2025): per-text input vectors optimised so that a frozen decoder
regenerates each text, the upper bound of what one memory of that decoder can hold.

The vectors [B, K, E] are the only trainable pytree; the decoder's parameters are an input of the
jitted step that is never differentiated. Every text's loss is its own mean cross-entropy and the
batch loss is their sum, so each text's gradient (and AdamW moments) is exactly that of optimising it
alone. A text stops (its vectors and moments no longer change) once its teacher-forced token accuracy
reaches 1.0, as in the paper; the loop ends when every text stopped or after `max_steps`.

A decoder is any causal `Decode`: the logits at position t may read the vectors and the tokens before
t only, so one function serves teacher forcing (cram) and greedy generation from the vectors alone
(greedy). Two are built here: an autoencoder's decoder reading one embedding (embedding_decoder) and
a causal LM reading [k vectors][text] (prefix_decoder, Kuratov et al.'s setting). Information gain
needs the decoder's best text-independent input, its prior: `prior` crams one set of vectors for all
texts at once.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from memjax.models.stack import logits_from

# decode(frozen, vectors_BxKxE, tokens_BxT) -> logits [B, T, V]; position t predicts token t from the
# vectors and tokens[:, :t] only (causal in the tokens).
Decode = Callable[[Any, jax.Array, jax.Array], jax.Array]
LR = 0.01  # the paper's AdamW learning rate
CHECK_EVERY = 20  # steps between looks at whether every text stopped (a look waits for the device)


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
    def loss_fn(vectors):
      loss_B, accuracy_B = text_losses(decode(frozen, vectors, tokens_BxT), tokens_BxT, mask_BxT)
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
  step = _step(decode, lr)
  state = init(jnp.asarray(init_BxKxE, jnp.float32), optimizer(lr))
  for i in range(max_steps):  # a stopped text never changes, so looking only now and then is exact
    state = step(frozen, state, tokens_BxT, mask_BxT)
    if i % CHECK_EVERY == CHECK_EVERY - 1 and not bool(state.active.any()):
      break
  # A last look at the final vectors: texts whose last update reached full accuracy stopped too.
  _, accuracy_B = text_losses(forward(decode)(frozen, state.vectors, tokens_BxT), tokens_BxT, mask_BxT)
  return Crammed(state.vectors, state.steps, accuracy_B >= 1.0)


def prior(decode: Decode, frozen: Any, tokens_BxT: jax.Array, init_1xKxE: jax.Array, *,
          mask_BxT: jax.Array | None = None, steps: int = 1000, lr: float = LR) -> jax.Array:
  """The decoder's prior [1, K, E]: one set of vectors crammed for all texts at once (their mean
  per-text cross-entropy), `steps` AdamW updates: the best input that knows nothing of the text, the
  baseline of information gain (a zero or random input can be far worse than uninformed)."""
  if init_1xKxE.ndim != 3 or init_1xKxE.shape[0] != 1:
    raise ValueError(f"a prior's initial vectors must be [1, K, E], got {init_1xKxE.shape}")
  if steps < 0:
    raise ValueError(f"steps must be at least 0, got {steps}")
  mask_BxT = jnp.ones(tokens_BxT.shape, jnp.float32) if mask_BxT is None else mask_BxT.astype(jnp.float32)
  return _prior_run(decode, lr, steps)(frozen, jnp.asarray(init_1xKxE, jnp.float32), tokens_BxT, mask_BxT)


# The jitted functions, one per decoder (and static setting): every call with the same decoder and
# shapes reuses one compilation (the sources of an experiment, its seeds through the compile cache).
@functools.lru_cache(maxsize=None)
def forward(decode: Decode) -> Decode:
  """The decoder, jitted (teacher-forced logits)."""
  return jax.jit(decode)


@functools.lru_cache(maxsize=None)
def _step(decode: Decode, lr: float) -> Callable[..., CramState]:
  return make_step(decode, optimizer(lr))


@functools.lru_cache(maxsize=None)
def _prior_run(decode: Decode, lr: float, steps: int) -> Callable[..., jax.Array]:
  tx = optimizer(lr)

  @jax.jit
  def run(frozen, vectors, tokens_BxT, mask_BxT):
    def loss_fn(v):
      v_BxKxE = jnp.broadcast_to(v, tokens_BxT.shape[:1] + v.shape[1:])
      return text_losses(decode(frozen, v_BxKxE, tokens_BxT), tokens_BxT, mask_BxT)[0].mean()

    def body(_, carry):
      v, opt_state = carry
      updates, opt_state = tx.update(jax.grad(loss_fn)(v), opt_state, v)
      return optax.apply_updates(v, updates), opt_state

    return jax.lax.fori_loop(0, steps, body, (vectors, tx.init(vectors)))[0]

  return run


def greedy(decode: Decode, frozen: Any, vectors_BxKxE: jax.Array, length: int) -> jax.Array:
  """Tokens [B, length] generated from the vectors alone: each position's argmax, fed back as the
  tokens the next positions read (the decoder is causal in them, so the unfilled ones are never read)."""

  return _greedy_run(decode, length)(frozen, vectors_BxKxE)


@functools.lru_cache(maxsize=None)
def _greedy_run(decode: Decode, length: int) -> Callable[..., jax.Array]:
  @jax.jit
  def run(frozen, vectors_BxKxE):
    def body(t, tokens_BxT):
      logits_BxTxV = decode(frozen, vectors_BxKxE, tokens_BxT)
      return tokens_BxT.at[:, t].set(jnp.argmax(logits_BxTxV[:, t], -1).astype(tokens_BxT.dtype))

    return jax.lax.fori_loop(0, length, body, jnp.zeros((vectors_BxKxE.shape[0], length), jnp.int32))

  return run


@functools.lru_cache(maxsize=None)  # one decoder (and its compilations) per architecture
def embedding_decoder(graphdef: Any) -> Decode:
  """An autoencoder's decoder (nnx graphdef; frozen: its nnx.Param state): reads one embedding,
  vectors [B, 1, E], and no token."""

  def decode(frozen, vectors_BxKxE, tokens_BxT):
    if vectors_BxKxE.shape[1] != 1:
      raise ValueError(f"an autoencoder's decoder reads one embedding per text, got {vectors_BxKxE.shape[1]}")
    return nnx.merge(graphdef, frozen).decode(vectors_BxKxE[:, 0], tokens_BxT.shape[1])

  return decode


@functools.lru_cache(maxsize=None)
def prefix_decoder(graphdef: Any) -> Decode:
  """A causal LM (models/lm.CausalLM graphdef; frozen: its nnx.Param state) reading [k vectors]
  [text]: its token embeddings after k input vectors of its width, the logits from the last vector
  on (the last vector predicts the first token)."""

  def decode(frozen, vectors_BxKxE, tokens_BxT):
    lm = nnx.merge(graphdef, frozen)
    K = vectors_BxKxE.shape[1]
    x_BxSxD = jnp.concatenate([vectors_BxKxE.astype(jnp.float32),
                               lm.decoder.embed(tokens_BxT[:, :-1]).astype(jnp.float32)], axis=1)
    hidden_BxSxD = lm.decoder.stack(x_BxSxD)
    return logits_from(hidden_BxSxD[:, K - 1:], lm.head, lm.decoder.embed)

  return decode
