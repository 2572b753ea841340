"""The parallel encoder-decoder memory model and its no-memory control.

A K*L-token input is split into K chunks of L tokens. The encoder embeds chunks 0..K-2 in one batched
call (one embedding per chunk); chunk c is then decoded causally with the memories of chunks < c
placed in front of its tokens. All K chunks are decoded in one batched decoder call.

Memory slots: with 'fixed' slots the decoder input is [m_0 .. m_{c-1}, pad x (K-1-c), tokens_c], so
token positions never move; with 'variable' slots it is [m_0 .. m_{c-1}, tokens_c, pad x (K-1-c)].
The output at token position t predicts token t+1 of the flat sequence, including across chunk
boundaries (the last position of chunk c predicts the first token of chunk c+1 from everything
before it), so the usual shifted causal-LM loss applies to the [B, K*L, V] logits.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from memjax.models import quantize as quant
from memjax.models.bridge import Bridge, embedding_at
from memjax.models.config import StackConfig
from memjax.models.dense import Dense
from memjax.models.stack import Tower, lm_head, logits_from

Slots = Literal["fixed", "variable"]
SLOTS: tuple[str, ...] = ("fixed", "variable")
ENCODINGS: tuple[str, ...] = ("text", "random")


def with_prefix(mask_BxL: jax.Array | None, prefix: int) -> jax.Array | None:
  """The padding mask of [prefix slots, tokens]: memory slots are always attended to."""
  if mask_BxL is None:
    return None
  return jnp.concatenate([jnp.ones(mask_BxL.shape[:-1] + (prefix,), mask_BxL.dtype), mask_BxL], axis=-1)


def decode_after_prefix(decoder: Tower, head: Dense, prefix_BxSxD: jax.Array, tokens_BxL: jax.Array,
                        mask_BxL: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """Decodes [prefix, embed(tokens)]; returns (logits [B, L, V] at the token positions, hidden [B, S+L, D])."""
  tokens_BxLxD = decoder.embed(tokens_BxL)
  inputs_BxPxD = jnp.concatenate([prefix_BxSxD.astype(tokens_BxLxD.dtype), tokens_BxLxD], axis=1)
  hidden_BxPxD = decoder.stack(inputs_BxPxD, with_prefix(mask_BxL, prefix_BxSxD.shape[1]))
  return logits_from(hidden_BxPxD[:, prefix_BxSxD.shape[1]:], head, None), hidden_BxPxD


def variable_slot_layout(chunks: int, chunk_len: int) -> tuple[np.ndarray, np.ndarray]:
  """Index maps for variable slots over the table [memories (K-1), tokens (L), pad (1)].

  Returns (source index [K, K-1+L] of each decoder input, decoder position [K, L] of each token).
  """
  S = chunks - 1
  c, i = np.arange(chunks)[:, None], np.arange(S + chunk_len)[None, :]
  source = np.where(i < c, i, np.where(i < c + chunk_len, S + i - c, S + chunk_len))
  return source, c + np.arange(chunk_len)[None, :]


class MemoryModel(nnx.Module):
  """tokens [B, K*L] -> {'logits' [B, K*L, V], 'memories' [B, K-1, D]}.

  `encoder=None` builds the no-memory control: every slot holds the constant pad vector.
  `encoding='random'` is the random-encoding control (paper §5.8): the encoder embeds random
  tokens (ids in [1, V), as the reference's `random=True`) instead of the text, so its memories
  look like real ones but carry nothing about the chunks. `tie_embeddings` reads the logits from
  the decoder's token embedding (pretrained decoders such as Llama 3.2 1B tie them).
  `quantize` (memjax.models.quantize.MODES) is how memories are stored: the decoder reads them
  rounded, with straight-through gradients; with `quantize_noise` training (`model.train()`, which
  the train step sets) adds one quantisation step of uniform noise instead, and evaluation and
  generation (`deterministic`, the default) round.
  """

  def __init__(self, encoder: StackConfig | None, decoder: StackConfig, *, chunks: int,
               slots: Slots = "fixed", embed_index: int = -1, compression: int = 1,
               pad_value: float = 1.0, init_convention: str = "memjax", tie_embeddings: bool = False,
               encoding: str = "text", quantize: str = "none", quantize_noise: bool = False,
               rngs: nnx.Rngs):
    if chunks < 2:
      raise ValueError(f"a memory model needs at least 2 chunks, got {chunks}")
    if slots not in SLOTS:
      raise ValueError(f"memory slots must be one of {SLOTS}, got {slots!r}")
    if encoding not in ENCODINGS:
      raise ValueError(f"memory encoding must be one of {ENCODINGS}, got {encoding!r}")
    # the no-memory control's constant memories are not stored: nothing to quantise
    self.quantize = quant.check(quantize) if encoder is not None else "none"
    self.quantize_noise = quantize_noise
    self.deterministic = True  # nnx's train() / eval() switch: noise only while training
    self.encoder = (Tower(encoder, init_convention=init_convention, rngs=rngs)
                    if encoder is not None else None)
    self.bridge = (Bridge(encoder.d_model, decoder.d_model, compression=compression, rngs=rngs)
                   if encoder is not None else None)
    self.decoder = Tower(decoder, init_convention=init_convention, rngs=rngs)
    self.head = None if tie_embeddings else lm_head(decoder, rngs, init_convention)
    self.chunks, self.slots, self.embed_index, self.pad_value = chunks, slots, embed_index, pad_value
    self.d_model, self.encoding = decoder.d_model, encoding
    self.vocab_size = encoder.vocab_size if encoder is not None else decoder.vocab_size

  def random_tokens(self, tokens_BxN: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Random ids in [1, V), a pure function of the batch (a new draw for every batch)."""
    weights_N = jnp.arange(1, tokens_BxN.shape[1] + 1, dtype=jnp.uint32)
    key = jax.random.fold_in(jax.random.key(0), jnp.sum(tokens_BxN.astype(jnp.uint32) * weights_N))
    return jax.random.randint(key, shape, 1, self.vocab_size, dtype=tokens_BxN.dtype)

  def encode(self, chunks_BxCxL: jax.Array, mask_BxCxL: jax.Array | None = None) -> jax.Array:
    """The memory of each chunk, [B, C, D], from one batched encoder call (constants without one),
    as the decoder reads it: stored at `quantize` precision."""
    memories_BxCxD = self.encode_unquantized(chunks_BxCxL, mask_BxCxL)
    if self.quantize == "none":
      return memories_BxCxD
    if self.quantize_noise and not self.deterministic:  # a fresh draw per batch, as random_tokens
      B, C, L = chunks_BxCxL.shape
      weights_N = jnp.arange(1, C * L + 1, dtype=jnp.uint32)
      key = jax.random.fold_in(jax.random.key(1), jnp.sum(chunks_BxCxL.reshape(B, -1).astype(jnp.uint32)
                                                          * weights_N))
      return quant.noise(memories_BxCxD, self.quantize, key)
    return quant.straight_through(memories_BxCxD, self.quantize)

  def encode_unquantized(self, chunks_BxCxL: jax.Array, mask_BxCxL: jax.Array | None = None) -> jax.Array:
    """The encoder's memories before storage, [B, C, D] (generation stores their codes)."""
    B, C, L = chunks_BxCxL.shape
    if self.encoder is None:
      return jnp.full((B, C, self.d_model), self.pad_value, jnp.float32)
    inputs = chunks_BxCxL.reshape(B * C, L)
    if self.encoding == "random":
      inputs = self.random_tokens(chunks_BxCxL.reshape(B, C * L), inputs.shape)
    mask = None if mask_BxCxL is None else mask_BxCxL.reshape(B * C, L)
    hidden = self.encoder(inputs, mask)
    return self.bridge(embedding_at(hidden, self.embed_index)).reshape(B, C, -1)

  def memories(self, chunks_BxKxL: jax.Array, mask_BxKxL: jax.Array | None = None) -> jax.Array:
    """One memory per chunk but the last, [B, K-1, D]."""
    return self.encode(chunks_BxKxL[:, :-1], None if mask_BxKxL is None else mask_BxKxL[:, :-1])

  def __call__(self, tokens_BxN: jax.Array, mask_BxN: jax.Array | None = None) -> dict[str, jax.Array]:
    """`mask_BxN` (1 on tokens, 0 on padding): transformers attend to tokens and to the memories of
    chunks that hold a token, never to padding (nor to the memory of a chunk of padding only)."""
    B, N = tokens_BxN.shape
    K, S = self.chunks, self.chunks - 1
    if N % K:
      raise ValueError(f"sequence length {N} is not divisible into {K} chunks")
    L = N // K
    chunks_BxKxL = tokens_BxN.reshape(B, K, L)
    mask_BxKxL = None if mask_BxN is None else mask_BxN.reshape(B, K, L)
    memories_BxSxD = self.memories(chunks_BxKxL, mask_BxKxL)
    tokens_BxKxLxD = self.decoder.embed(chunks_BxKxL)
    dtype = tokens_BxKxLxD.dtype
    memories_BxSxD = memories_BxSxD.astype(dtype)
    pad_D = jnp.full((self.d_model,), self.pad_value, dtype)
    if self.slots == "fixed":
      visible_KxS = np.arange(S)[None, :] < np.arange(K)[:, None]
      slots_BxKxSxD = jnp.where(visible_KxS[None, :, :, None], memories_BxSxD[:, None], pad_D)
      inputs_BxKxPxD = jnp.concatenate([slots_BxKxSxD, tokens_BxKxLxD], axis=2)
      read_KxL = np.broadcast_to(S + np.arange(L), (K, L))
      if mask_BxKxL is not None:  # unused slots hold the constant pad vector, attended as without a mask
        slot_mask_BxKxS = jnp.where(visible_KxS, mask_BxKxL[:, None, :-1].max(axis=-1), 1.0)
        mask_BxKxP = jnp.concatenate([slot_mask_BxKxS.astype(mask_BxKxL.dtype), mask_BxKxL], axis=2)
    else:
      source_KxP, read_KxL = variable_slot_layout(K, L)
      table_BxKxRxD = jnp.concatenate([
          jnp.broadcast_to(memories_BxSxD[:, None], (B, K, S, self.d_model)), tokens_BxKxLxD,
          jnp.broadcast_to(pad_D, (B, K, 1, self.d_model))], axis=2)
      inputs_BxKxPxD = table_BxKxRxD[:, np.arange(K)[:, None], source_KxP]
      if mask_BxKxL is not None:  # the same gather over [memories, tokens, pad] of the mask
        memory_mask_BxKxS = jnp.broadcast_to(mask_BxKxL[:, None, :-1].max(axis=-1), (B, K, S))
        table_BxKxR = jnp.concatenate([memory_mask_BxKxS, mask_BxKxL, jnp.ones((B, K, 1), mask_BxKxL.dtype)],
                                      axis=2)
        mask_BxKxP = table_BxKxR[:, np.arange(K)[:, None], source_KxP]
    P = inputs_BxKxPxD.shape[2]
    mask_BPxP = None if mask_BxKxL is None else mask_BxKxP.reshape(B * K, P)
    hidden_BPxPxD = self.decoder.stack(inputs_BxKxPxD.reshape(B * K, P, -1), mask_BPxP)
    hidden_BxKxPxD = hidden_BPxPxD.reshape(B, K, P, -1)
    hidden_BxKxLxD = hidden_BxKxPxD[:, np.arange(K)[:, None], read_KxL]
    logits = logits_from(hidden_BxKxLxD, self.head, self.decoder.embed)
    return {"logits": logits.reshape(B, N, -1), "memories": memories_BxSxD}
