"""Decoding cost against total context: the memory model, a full-context transformer with the same
decoder, and the recurrent (RMT) baseline (paper §5.9: the memory model's per-token cost and cache
grow with the number of chunks, the full-context model's with the number of tokens).

For a context of C tokens (C a multiple of the chunk length L), each model is built to hold C + L
tokens and gets a random C-token prompt. The memory and recurrent models decode L new tokens, so
they roll over into a new chunk exactly once inside the timed window (their per-token figure
includes one chunk encoding, amortized); the full-context model, which never rolls over, decodes
fewer (see `run`). Untrained weights: costs do not depend on the weights' values.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from memjax.generation.generator import Generator
from memjax.models import quantize as quant
from memjax.models.config import StackConfig
from memjax.models.lm import CausalLM
from memjax.models.memory import MemoryModel
from memjax.models.recurrent import RecurrentMemoryModel

MODELS: tuple[str, ...] = ("memory", "full", "recurrent")


def build(name: str, decoder: StackConfig, encoder: StackConfig, *, context: int, chunk: int,
          seed: int = 0, quantize: str = "none") -> nnx.Module:
  """The model `name` holding `context` tokens in chunks of `chunk` (memory and recurrent; the
  memory model stores its memories at `quantize` precision)."""
  rngs, chunks = nnx.Rngs(seed), context // chunk
  if name == "full":
    return CausalLM(decoder.replace(length=context), rngs=rngs)
  if name == "memory":
    return MemoryModel(encoder.replace(length=chunk), decoder.replace(length=chunks - 1 + chunk),
                       chunks=chunks, quantize=quantize, rngs=rngs)
  if name == "recurrent":
    return RecurrentMemoryModel(decoder.replace(length=chunk + 1), chunks=chunks, rngs=rngs)
  raise ValueError(f"model must be one of {MODELS}, got {name!r}")


def measure(model: nnx.Module, context: int, prompt_tokens: int, new_tokens: int, *,
            repeats: int = 3, seed: int = 0, skip_prefill: bool = False) -> dict[str, Any]:
  """Prefill time (one run, compiled ahead) and the median decode time of `repeats` runs (after
  one untimed run) of `new_tokens` steps, each from a copy of the prefilled state.

  `skip_prefill` (causal LMs): no prefill; decoding starts from a zero cache marked as holding the
  prompt, which costs the same per step (prefill_s is then None).
  """
  generator = Generator(model, context)
  prompt = np.random.default_rng(seed).integers(4, model.head.out_features, prompt_tokens).tolist()
  generator.check([prompt], new_tokens)
  key = jax.random.key(seed)
  state, prompt_BxP, lengths_B = generator.inputs([prompt])
  if skip_prefill:  # decode cost does not depend on the cached values, only on their number
    state, token, prefill_s = state | {"length": lengths_B}, jnp.zeros_like(lengths_B), None
  else:
    prefill = generator.prefill_fn.lower(generator.params, state, prompt_BxP, lengths_B, key).compile()
    start = time.perf_counter()
    state, token, _ = prefill(generator.params, state, prompt_BxP, lengths_B, key)
    jax.block_until_ready(token)
    prefill_s = round(time.perf_counter() - start, 4)
  prefilled = jax.tree.map(jnp.copy, (state, token))
  step = generator.step_fn.lower(generator.params, state, token, key, 1).compile()
  decode_s, decode_cpu_s = [], []
  for repeat in range(repeats + 1):
    state, token = jax.tree.map(jnp.copy, prefilled)
    jax.block_until_ready(token)
    start, cpu = time.perf_counter(), time.process_time()
    for t in range(1, new_tokens + 1):
      state, token, _ = step(generator.params, state, token, key, t)
    jax.block_until_ready((state, token))
    if repeat:  # the first run warms up
      decode_s.append((time.perf_counter() - start) / new_tokens)
      decode_cpu_s.append((time.process_time() - cpu) / new_tokens)
  per_token = statistics.median(decode_s)
  return {"prefill_s": prefill_s,
          "decode_ms_per_token": round(1e3 * per_token, 3),
          "decode_tokens_per_s": round(1 / per_token, 1),
          "kv_cache_bytes": generator.cache_bytes(state),
          "state_bytes": sum(x.nbytes for x in jax.tree.leaves(state)),
          **memory_bytes(model),
          "decode_ms_all": [round(1e3 * s, 3) for s in decode_s],
          # CPU time of all threads: steadier than wall time on a shared machine
          "decode_cpu_ms_per_token": round(1e3 * statistics.median(decode_cpu_s), 3)}


def memory_bytes(model: nnx.Module) -> dict[str, Any]:
  """A memory model's storage of memories beside its KV cache: bytes per memory at its quantisation
  (d x bits / 8 + the scale's bytes, packed: the decoding state holds int4 and binary codes a byte
  each) and for all (chunks - 1) slots; nothing for other models."""
  if not isinstance(model, MemoryModel):
    return {}
  per_memory = quant.bytes_per_memory(model.quantize, model.d_model)
  return {"quantize": model.quantize, "bytes_per_memory": per_memory,
          "memories_bytes": per_memory * (model.chunks - 1)}


def run(decoder: StackConfig, encoder: StackConfig, contexts: list[int], *, chunk: int = 256,
        models: tuple[str, ...] = MODELS, repeats: int = 3, full_new_tokens: int = 64,
        full_prefill_max: int = 0, quantize: str = "none") -> Iterator[dict[str, Any]]:
  """One result per model and context length (prompt = context).

  The memory and recurrent models decode one chunk (one roll-over inside the window); the
  full-context model, which has no roll-over, `full_new_tokens` (its per-token cost grows by
  new/context over the window: under 1/16 at 1k tokens, ~0 at 16k). `full_prefill_max` > 0 skips
  the full-context model's (quadratic) prefill above that many tokens. `quantize`: the memory
  model's memory storage (memjax.models.quantize.MODES).
  """
  for context in contexts:
    if context % chunk:
      raise ValueError(f"context {context} is not a multiple of the chunk length {chunk}")
    for name in models:
      model = build(name, decoder, encoder, context=context + chunk, chunk=chunk, quantize=quantize)
      new = min(full_new_tokens, chunk) if name == "full" else chunk
      skip = name == "full" and 0 < full_prefill_max < context
      result = measure(model, context + chunk, context, new, repeats=repeats, skip_prefill=skip)
      yield {"benchmark": "generate", "model": name, "context_tokens": context, "new_tokens": new,
             "chunk": chunk} | result
