"""Decoding cost against total context: the memory model, a full-context transformer with the same
decoder, and the recurrent (RMT) baseline (paper §5.9: the memory model's per-token cost and cache
grow with the number of chunks, the full-context model's with the number of tokens).

For a context of C tokens (C a multiple of the chunk length L), each model is built to hold C + L
tokens, gets a random C-token prompt and decodes L new tokens, so the memory and recurrent models
roll over into a new chunk exactly once inside the timed window (their per-token figure includes
one chunk encoding, amortized). Untrained weights: costs do not depend on the weights' values.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Iterator

import jax
import numpy as np
from flax import nnx

from memjax.generation.generator import Generator
from memjax.models.config import StackConfig
from memjax.models.lm import CausalLM
from memjax.models.memory import MemoryModel
from memjax.models.recurrent import RecurrentMemoryModel

MODELS: tuple[str, ...] = ("memory", "full", "recurrent")


def build(name: str, decoder: StackConfig, encoder: StackConfig, *, context: int, chunk: int,
          seed: int = 0) -> nnx.Module:
  """The model `name` holding `context` tokens in chunks of `chunk` (memory and recurrent)."""
  rngs, chunks = nnx.Rngs(seed), context // chunk
  if name == "full":
    return CausalLM(decoder.replace(length=context), rngs=rngs)
  if name == "memory":
    return MemoryModel(encoder.replace(length=chunk), decoder.replace(length=chunks - 1 + chunk),
                       chunks=chunks, rngs=rngs)
  if name == "recurrent":
    return RecurrentMemoryModel(decoder.replace(length=chunk + 1), chunks=chunks, rngs=rngs)
  raise ValueError(f"model must be one of {MODELS}, got {name!r}")


def measure(model: nnx.Module, context: int, prompt_tokens: int, new_tokens: int, *,
            repeats: int = 3, seed: int = 0) -> dict[str, Any]:
  """Median prefill and decode times over `repeats` runs, after one untimed (compiling) run."""
  generator = Generator(model, context)
  vocab = model.head.out_features
  prompt = np.random.default_rng(seed).integers(4, vocab, prompt_tokens).tolist()
  generator.check([prompt], new_tokens)
  key = jax.random.key(seed)
  prefill_s, decode_s = [], []
  for repeat in range(repeats + 1):
    start = time.perf_counter()
    state, token, _ = generator.start([prompt], key)
    jax.block_until_ready(token)
    prefilled = time.perf_counter()
    for t in range(1, new_tokens + 1):
      state, token, _ = generator.step_fn(generator.params, state, token, key, t)
    jax.block_until_ready((state, token))
    done = time.perf_counter()
    if repeat:  # the first run compiles
      prefill_s.append(prefilled - start)
      decode_s.append((done - prefilled) / new_tokens)
  per_token = statistics.median(decode_s)
  return {"prefill_s": round(statistics.median(prefill_s), 4),
          "decode_ms_per_token": round(1e3 * per_token, 3),
          "decode_tokens_per_s": round(1 / per_token, 1),
          "kv_cache_bytes": generator.cache_bytes(state),
          "state_bytes": sum(x.nbytes for x in jax.tree.leaves(state)),
          "decode_ms_all": [round(1e3 * s, 3) for s in decode_s],
          "compiled_decode_steps": generator.step_fn._cache_size()}


def run(decoder: StackConfig, encoder: StackConfig, contexts: list[int], *, chunk: int = 256,
        models: tuple[str, ...] = MODELS, repeats: int = 3) -> Iterator[dict[str, Any]]:
  """One result per model and context length (prompt = context; decodes one chunk of tokens)."""
  for context in contexts:
    if context % chunk:
      raise ValueError(f"context {context} is not a multiple of the chunk length {chunk}")
    for name in models:
      model = build(name, decoder, encoder, context=context + chunk, chunk=chunk)
      result = measure(model, context + chunk, context, chunk, repeats=repeats)
      yield {"benchmark": "generate", "model": name, "context_tokens": context, "new_tokens": chunk,
             "chunk": chunk} | result
