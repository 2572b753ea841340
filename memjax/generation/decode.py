"""Incremental decoding of every causal memjax model, over the trained modules' own parameters.

The model's block stack decodes itself (`Stack.decode`: each block over its own cache slice) a few
new positions per sequence at a time: a prompt block, one token, or a memory prefix. On top of it,
one `Decoding` per model family holds the state a model needs between tokens, as a pytree of arrays
with static shapes:

- `CausalDecoding` (causal LMs and memory.kind=full): one cache over all positions.
- `MemoryDecoding` (the parallel memory model and its no-memory control): the memories (stored as
  the model's `quantize` mode stores them: codes and a scale per memory), the current
  chunk's tokens and a decoder cache of (chunks - 1) memory slots plus one chunk. A prompt's full
  chunks are encoded in one batched encoder call; when a chunk fills during decoding it is encoded
  and becomes the next memory, and the token part of the cache starts over.
- `RecurrentDecoding` (RMT): one carried memory and a cache of 1 + chunk positions; the memory of
  the next chunk is the decoder's last hidden state of the current one.

Every method is pure (model, state, arrays) -> (state, logits [B, V]); memjax.generation.generator
jits them. Sequences of a batch may have different lengths: every position is per sequence.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from memjax.generation import cache as cache_lib
from memjax.models import quantize as quant
from memjax.models.lm import CausalLM
from memjax.models.memory import MemoryModel
from memjax.models.recurrent import RecurrentMemoryModel
from memjax.models.stack import Tower, logits_from

State = dict


# ------------------------------------------------------------------------------ helpers


def _at(x_BxSxF: jax.Array, index_B: jax.Array) -> jax.Array:
  """x[b, index[b]]: [B, F]."""
  return jnp.take_along_axis(x_BxSxF, index_B[:, None, None], axis=1)[:, 0]


def _select(mask_B: jax.Array, new, old):
  """Per sequence: the new pytree where mask[b], else the old one. Leaves lead with the batch axis
  or with sequence-major rows of several per sequence (the heads of a cache)."""
  def pick(a, b):
    mask_R = jnp.repeat(mask_B, a.shape[0] // mask_B.shape[0])
    return jnp.where(mask_R.reshape(-1, *([1] * (a.ndim - 1))), a, b)
  return jax.tree.map(pick, new, old)


def _row_slice(tokens_BxN: jax.Array, start_B: jax.Array, length: int) -> jax.Array:
  return jax.vmap(lambda t, s: jax.lax.dynamic_slice_in_dim(t, s, length))(tokens_BxN, start_B)


# ------------------------------------------------------------------------------ models


class CausalDecoding:
  """A causal LM: the cache spans the whole context; prompts are prefilled in blocks."""

  def __init__(self, context: int, prefill_block: int = 1024):
    self.context, self.prefill_block = context, prefill_block

  def prompt_shape(self, longest: int, cache_len: int) -> int:
    """The padded prompt length: powers of two up to a block, then whole blocks (the buckets)."""
    bucket = max(16, 1 << (longest - 1).bit_length())
    if bucket > self.prefill_block:
      bucket = -(-longest // self.prefill_block) * self.prefill_block
    return min(bucket, cache_len)

  def init(self, model: CausalLM, batch: int, cache_len: int) -> State:
    return {"cache": cache_lib.stack_cache(model.decoder, batch, cache_len),
            "length": jnp.zeros((batch,), jnp.int32)}

  def _logits(self, model: CausalLM, hidden_BxD: jax.Array) -> jax.Array:
    return logits_from(hidden_BxD[:, None], model.head, model.decoder.embed)[:, 0]

  def prefill(self, model: CausalLM, state: State, prompt_BxP: jax.Array, lengths_B: jax.Array):
    B, P = prompt_BxP.shape
    block = min(P, self.prefill_block)
    starts = jnp.asarray(np.minimum(np.arange(0, P, block), P - block), jnp.int32)

    def one_block(carry, start):
      cache, hidden_BxD = carry
      x_BxSxD = model.decoder.embed(jax.lax.dynamic_slice_in_dim(prompt_BxP, start, block, axis=1))
      h_BxSxD, cache = model.decoder.stack.decode(x_BxSxD, cache, jnp.full((B,), start))
      last_B = lengths_B - 1 - start
      inside_B = (last_B >= 0) & (last_B < block)
      hidden_BxD = jnp.where(inside_B[:, None], _at(h_BxSxD, jnp.clip(last_B, 0, block - 1)), hidden_BxD)
      return (cache, hidden_BxD), None

    hidden_BxD = jnp.zeros((B, model.decoder.embed.features), jnp.float32)
    (cache, hidden_BxD), _ = jax.lax.scan(one_block, (state["cache"], hidden_BxD), starts)
    return {"cache": cache, "length": lengths_B}, self._logits(model, hidden_BxD)

  def step(self, model: CausalLM, state: State, token_B: jax.Array):
    x_Bx1xD = model.decoder.embed(token_B[:, None])
    h_Bx1xD, cache = model.decoder.stack.decode(x_Bx1xD, state["cache"], state["length"])
    return {"cache": cache, "length": state["length"] + 1}, self._logits(model, h_Bx1xD[:, 0])


class MemoryDecoding:
  """The parallel memory model: memories of finished chunks in front of the current chunk."""

  def __init__(self, model: MemoryModel, context: int):
    if context % model.chunks:
      raise ValueError(f"a context of {context} tokens is not divisible into {model.chunks} chunks")
    self.context, self.chunk = context, context // model.chunks
    self.slots = model.chunks - 1

  def prompt_shape(self, longest: int, cache_len: int) -> int:
    """Whole chunks (one compiled prefill per number of chunks)."""
    return -(-longest // self.chunk) * self.chunk

  def init(self, model: MemoryModel, batch: int, cache_len: int) -> State:
    S, L = self.slots, self.chunk
    return {"cache": cache_lib.stack_cache(model.decoder, batch, S + L),
            # stored as the model's quantisation stores them: codes and one scale per memory
            "memories": jnp.zeros((batch, S, model.d_model), quant.code_dtype(model.quantize)),
            "scales": jnp.ones((batch, S), jnp.float32),
            "chunk": jnp.zeros((batch, L), jnp.int32),  # the current chunk's tokens
            "index": jnp.zeros((batch,), jnp.int32),  # which chunk is current
            "fill": jnp.zeros((batch,), jnp.int32)}  # tokens of it decoded so far

  def _store(self, model: MemoryModel, chunks_BxCxL: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(codes [B, C, D], scales [B, C]) of the chunks' memories: what the model's decoder reads after
    decoding them is what it reads in evaluation."""
    return quant.encode(model.encode_unquantized(chunks_BxCxL), model.quantize)

  def _token_start(self, model: MemoryModel, index_B: jax.Array) -> jax.Array:
    return jnp.full_like(index_B, self.slots) if model.slots == "fixed" else index_B

  def _with_prefix(self, model: MemoryModel, state: State) -> State:
    """Decodes the memory slots of each sequence's current chunk into the cache (positions 0..S-1).

    Slots without a memory hold the pad vector ('fixed'); with 'variable' slots the positions from
    the first token on are overwritten by the chunk's tokens (and masked until then).
    """
    S, B = self.slots, state["index"].shape[0]
    visible_BxS = jnp.arange(S)[None, :] < state["index"][:, None]
    memories_BxSxD = quant.decode(state["memories"], state["scales"], model.quantize)
    inputs_BxSxD = jnp.where(visible_BxS[..., None], memories_BxSxD, model.pad_value)
    _, cache = model.decoder.stack.decode(inputs_BxSxD, state["cache"], jnp.zeros((B,), jnp.int32))
    return state | {"cache": cache}

  def _tokens(self, model: MemoryModel, state: State, tokens_BxN: jax.Array, count_B: jax.Array):
    """Decodes tokens at the current chunk's fill offset; returns (state, hidden at the last one)."""
    start_B = self._token_start(model, state["index"]) + state["fill"]
    h_BxNxD, cache = model.decoder.stack.decode(model.decoder.embed(tokens_BxN), state["cache"], start_B)
    return state | {"cache": cache, "fill": state["fill"] + count_B}, _at(h_BxNxD, count_B - 1)

  def _logits(self, model: MemoryModel, hidden_BxD: jax.Array) -> jax.Array:
    return logits_from(hidden_BxD[:, None], model.head, model.decoder.embed)[:, 0]

  def prefill(self, model: MemoryModel, state: State, prompt_BxP: jax.Array, lengths_B: jax.Array):
    B, P = prompt_BxP.shape
    S, L = self.slots, self.chunk
    index_B = (lengths_B - 1) // L  # the chunk of the last prompt token is the current one
    encoded = min(P // L - 1, S)  # the chunks before the longest prompt's current one
    if encoded > 0:  # all in one batched encoder call
      codes_BxCxD, scales_BxC = self._store(model, prompt_BxP[:, :encoded * L].reshape(B, encoded, L))
      memories = state["memories"].at[:, :encoded].set(codes_BxCxD)
      scales = state["scales"].at[:, :encoded].set(scales_BxC)
    else:
      memories, scales = state["memories"], state["scales"]
    padded_BxN = jnp.pad(prompt_BxP, ((0, 0), (0, L)))
    state = state | {"memories": memories, "scales": scales, "index": index_B, "fill": jnp.zeros_like(index_B),
                     "chunk": _row_slice(padded_BxN, index_B * L, L)}
    state = self._with_prefix(model, state)
    state, hidden_BxD = self._tokens(model, state, state["chunk"], lengths_B - index_B * L)
    return state, self._logits(model, hidden_BxD)

  def _next_chunk(self, model: MemoryModel, state: State) -> State:
    """Sequences whose chunk is full: encode it into the next memory and start a new chunk."""
    full_B = state["fill"] == self.chunk
    codes_Bx1xD, scales_Bx1 = self._store(model, state["chunk"][:, None])
    slot_B, rows_B = jnp.minimum(state["index"], self.slots - 1), jnp.arange(full_B.shape[0])
    rolled = state | {
        "memories": state["memories"].at[rows_B, slot_B].set(codes_Bx1xD[:, 0]),
        "scales": state["scales"].at[rows_B, slot_B].set(scales_Bx1[:, 0]),
        "index": state["index"] + 1, "fill": jnp.zeros_like(state["fill"])}
    return _select(full_B, self._with_prefix(model, rolled), state)

  def step(self, model: MemoryModel, state: State, token_B: jax.Array):
    state = jax.lax.cond(jnp.any(state["fill"] == self.chunk),
                         lambda s: self._next_chunk(model, s), lambda s: s, state)
    B = token_B.shape[0]
    state = state | {"chunk": state["chunk"].at[jnp.arange(B), state["fill"]].set(token_B)}
    state, hidden_BxD = self._tokens(model, state, token_B[:, None], jnp.ones((B,), jnp.int32))
    return state, self._logits(model, hidden_BxD)


class RecurrentDecoding:
  """RMT: chunk c is decoded as [m_c, tokens_c]; m_{c+1} is its last position's hidden state."""

  def __init__(self, model: RecurrentMemoryModel, context: int):
    if context % model.chunks:
      raise ValueError(f"a context of {context} tokens is not divisible into {model.chunks} chunks")
    self.context, self.chunk = context, context // model.chunks

  def prompt_shape(self, longest: int, cache_len: int) -> int:
    return -(-longest // self.chunk) * self.chunk

  def init(self, model: RecurrentMemoryModel, batch: int, cache_len: int) -> State:
    zeros_BxD = jnp.zeros((batch, model.d_model), jnp.float32)
    return {"cache": cache_lib.stack_cache(model.decoder, batch, 1 + self.chunk),
            "hidden": zeros_BxD,  # the decoder's output at the last decoded position
            "fill": jnp.zeros((batch,), jnp.int32)}

  def _start_chunk(self, model: RecurrentMemoryModel, state: State, memory_BxD: jax.Array) -> State:
    B = memory_BxD.shape[0]
    _, cache = model.decoder.stack.decode(memory_BxD[:, None], state["cache"], jnp.zeros((B,), jnp.int32))
    return state | {"cache": cache, "fill": jnp.zeros((B,), jnp.int32)}

  def _tokens(self, model: RecurrentMemoryModel, state: State, tokens_BxN: jax.Array, count_B: jax.Array):
    decoder: Tower = model.decoder
    h_BxNxD, cache = decoder.stack.decode(decoder.embed(tokens_BxN), state["cache"], 1 + state["fill"])
    hidden_BxD = _at(h_BxNxD, count_B - 1)
    state = state | {"cache": cache, "fill": state["fill"] + count_B, "hidden": hidden_BxD}
    return state, logits_from(hidden_BxD[:, None], model.head, None)[:, 0]

  def prefill(self, model: RecurrentMemoryModel, state: State, prompt_BxP: jax.Array, lengths_B: jax.Array):
    B, P = prompt_BxP.shape
    L = self.chunk
    index_B = (lengths_B - 1) // L
    chunks_CxBxL = prompt_BxP.reshape(B, P // L, L).transpose(1, 0, 2)[:-1]  # before the current one

    def carry_memory(memory_BxD, c_and_chunk):
      c, chunk_BxL = c_and_chunk
      inputs_BxPxD = jnp.concatenate([memory_BxD[:, None], model.decoder.embed(chunk_BxL)], axis=1)
      new_BxD = model.decoder.stack(inputs_BxPxD)[:, -1]
      return jnp.where((c < index_B)[:, None], new_BxD, memory_BxD), None

    memory_BxD = jnp.full((B, model.d_model), model.pad_value, jnp.float32)
    memory_BxD, _ = jax.lax.scan(carry_memory, memory_BxD, (jnp.arange(P // L - 1), chunks_CxBxL))
    state = self._start_chunk(model, state, memory_BxD)
    chunk_BxL = _row_slice(jnp.pad(prompt_BxP, ((0, 0), (0, L))), index_B * L, L)
    return self._tokens(model, state, chunk_BxL, lengths_B - index_B * L)

  def step(self, model: RecurrentMemoryModel, state: State, token_B: jax.Array):
    state = jax.lax.cond(jnp.any(state["fill"] == self.chunk),
                         lambda s: _select(s["fill"] == self.chunk, self._start_chunk(model, s, s["hidden"]), s),
                         lambda s: s, state)
    return self._tokens(model, state, token_B[:, None], jnp.ones_like(token_B))


Decoding = CausalDecoding | MemoryDecoding | RecurrentDecoding


def for_model(model: nnx.Module, context: int, *, prefill_block: int = 1024) -> Decoding:
  """The decoding of a model that holds `context` tokens (its training data.n_ctx)."""
  tower = getattr(model, "decoder", None)
  if isinstance(tower, Tower):
    tower.stack.decodes_itself()  # a block family with half the decode methods is named here
  if isinstance(model, CausalLM):
    limit = model.decoder.stack.max_length()
    if limit is not None and context > limit:
      raise ValueError(f"this mixer holds {limit} tokens, not {context}")
    return CausalDecoding(context, prefill_block)
  if isinstance(model, MemoryModel):
    return MemoryDecoding(model, context)
  if isinstance(model, RecurrentMemoryModel):
    return RecurrentDecoding(model, context)
  raise ValueError(f"{type(model).__name__} does not generate text: only causal models do (causal LMs "
                   "and memory models of kind parallel, none, full or recurrent; autoencoders and "
                   "oracle memory models read the text they predict)")
