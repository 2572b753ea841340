"""Jitted prefill and decode steps over a model's parameters, and the generation loop around them.

The model's structure (NNX graphdef) is static; parameters and the decoding state are explicit
pytrees. The decode step is compiled once per batch size and cache size (never per token or per
prompt length) and donates its state, so caches are updated in place; the prefill is compiled once
per padded prompt length (a bucket: powers of two, whole prefill blocks, or whole chunks).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from memjax.generation import cache as cache_lib
from memjax.generation import decode
from memjax.generation.sampling import Sampling, sample


class Generator:
  """Generates continuations of token-id prompts with `model`, which holds `context` tokens.

  `cache_len` (causal LMs only) sizes the preallocated KV cache; it defaults to the context.
  """

  def __init__(self, model: nnx.Module, context: int, *, sampling: Sampling = Sampling(),
               cache_len: int | None = None, prefill_block: int = 1024):
    self.model, self.context, self.sampling = model, context, sampling
    self.decoding = decode.for_model(model, context, prefill_block=prefill_block)
    self.cache_len = cache_len or context
    graphdef, params = nnx.split(model, nnx.Param)
    self.graphdef, self.params = graphdef, nnx.to_pure_dict(params)
    self.prefill_fn = jax.jit(self._prefill, donate_argnums=1)
    self.step_fn = jax.jit(self._step, donate_argnums=1)

  def _prefill(self, params, state, prompt_BxP, lengths_B, key):
    model = nnx.merge(self.graphdef, params)
    state, logits_BxV = self.decoding.prefill(model, state, prompt_BxP, lengths_B)
    return state, sample(logits_BxV, jax.random.fold_in(key, 0), self.sampling), logits_BxV

  def _step(self, params, state, token_B, key, t):
    model = nnx.merge(self.graphdef, params)
    state, logits_BxV = self.decoding.step(model, state, token_B)
    return state, sample(logits_BxV, jax.random.fold_in(key, t), self.sampling), logits_BxV

  def check(self, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> None:
    """Clear errors for what this model cannot do (before anything is compiled)."""
    if not prompts:
      raise ValueError("no prompt given")
    if max_new_tokens < 1:
      raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    for i, prompt in enumerate(prompts):
      if len(prompt) == 0:
        raise ValueError(f"prompt {i} is empty: give at least one token")
      total = len(prompt) + max_new_tokens
      if total > self.context:
        raise ValueError(f"prompt {i} ({len(prompt)} tokens) + max_new_tokens ({max_new_tokens}) = "
                         f"{total} tokens exceed what this model holds ({self.context} tokens)")
      if isinstance(self.decoding, decode.CausalDecoding) and total - 1 > self.cache_len:
        raise ValueError(f"prompt {i} + max_new_tokens = {total} tokens exceed the KV cache of "
                         f"{self.cache_len} positions")

  def inputs(self, prompts: Sequence[Sequence[int]]) -> tuple[dict, jax.Array, jax.Array]:
    """(empty state, prompts right-padded to their bucket [B, P], lengths [B]): the prefill's inputs."""
    lengths = np.array([len(p) for p in prompts], np.int32)
    width = self.decoding.prompt_shape(int(lengths.max()), self.cache_len)
    prompt_BxP = np.zeros((len(prompts), width), np.int32)
    for row, prompt in zip(prompt_BxP, prompts):
      row[:len(prompt)] = prompt
    state = self.decoding.init(self.model, len(prompts), self.cache_len)
    return state, jnp.asarray(prompt_BxP), jnp.asarray(lengths)

  def start(self, prompts: Sequence[Sequence[int]], key: jax.Array):
    """(state, first sampled tokens [B], their logits [B, V]) after the prefill of `prompts`."""
    return self.prefill_fn(self.params, *self.inputs(prompts), key)

  def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, *, seed: int = 0,
               on_token: Callable[[np.ndarray], None] | None = None, stop_token: int | None = None,
               keep_logits: bool = False) -> dict[str, np.ndarray]:
    """{'tokens' [B, N]} (and 'logits' [B, N, V] with keep_logits), N <= max_new_tokens.

    `on_token` receives each step's tokens [B] as soon as they are sampled (streaming). Generation
    ends early once every sequence has produced `stop_token`.
    """
    self.check(prompts, max_new_tokens)
    key = jax.random.key(seed)
    state, token_B, logits_BxV = self.start(prompts, key)
    tokens, logits = [token_B], [logits_BxV]
    stopped = np.zeros(len(prompts), bool)

    def emit(token_B):
      nonlocal stopped
      if on_token:
        on_token(np.asarray(token_B))
      if stop_token is not None:
        stopped = stopped | (np.asarray(token_B) == stop_token)
      return stopped.all()

    done = emit(token_B)
    for t in range(1, max_new_tokens):
      if done:
        break
      state, token_B, logits_BxV = self.step_fn(self.params, state, token_B, key, t)
      tokens.append(token_B)
      if keep_logits:
        logits.append(logits_BxV)
      done = emit(token_B)
    self.last_state = state  # for inspection (cache sizes)
    out = {"tokens": np.stack([np.asarray(t) for t in tokens], axis=1)}
    if keep_logits:
      out["logits"] = np.stack([np.asarray(x) for x in logits], axis=1)
    return out

  def cache_bytes(self, state) -> int:
    """Bytes of the decoder's cache (keys and values, or a mixer's inputs) in a decoding state."""
    return cache_lib.nbytes(state["cache"])
