"""A long-context task whose answers only memories can carry (issue 21 §3), in the manner of BABILong
and needle-in-a-haystack, generated from the corpus itself (no download).

A sequence of K chunks of L tokens (a memory model's input) is ordinary text with two things planted
in each row b: a fact "the key of X is Y", written [SEP, X, SEP, Y] at a random offset inside chunk
K-1-d_b, and the same words as its question at the very end of the last chunk, whose Y tokens are
the only targets (next-token prediction: [SEP, X, SEP] is the question, Y its answer). d_b (1..K-1)
is the distance in chunks from fact to question. A memory model decodes the last chunk from its own
tokens and the memories of the others, so Y can reach the answer only through a memory; a
full-context model sees the fact, a no-memory model never does.

SEP marks the template because text never holds it; X is a random non-special id, Y's tokens random
among the first `answer_ids` non-special ids (0: all of them), so no language model guesses them
(chance: 1 / answer_ids per token). A small answer set is what makes the task learnable at small
scale: a model must learn to copy each answer id, from a single scored token per row. Distances
cycle 1..K-1 over the rows, so every batch holds each distance equally often; offsets, keys and
values are a pure function of the PRNG key (training: the run's seed and step; evaluation: the batch).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

KEY_TOKENS = 1  # X: one random id
ANSWER_TOKENS = 1  # Y: one random id, the target


def fact_length(key_tokens: int = KEY_TOKENS, answer_tokens: int = ANSWER_TOKENS) -> int:
  """Tokens of [SEP, X, SEP, Y] (the fact, and the question with its answer)."""
  return 2 + key_tokens + answer_tokens


def distances(rows: int, chunks: int) -> np.ndarray:
  """Each row's distance in chunks between fact and question: 1, 2, ..., K-1, 1, 2, ..."""
  return 1 + np.arange(rows) % (chunks - 1)


def plant(tokens_BxN: jax.Array, mask_BxN: jax.Array, key: jax.Array, *, chunks: int, marker_id: int,
          vocab_size: int, special_ids: Sequence[int], key_tokens: int = KEY_TOKENS,
          answer_tokens: int = ANSWER_TOKENS, answer_ids: int = 0) -> dict[str, jax.Array]:
  """Plants one fact and its question in every row of a text batch (see the module docstring).

  Returns {'inputs', 'targets', 'weights', 'input_mask'} [B, N] (weights 1 exactly on the question's
  answer tokens), 'distance' [B] (chunks between fact and question) and 'fact_start' [B] (the flat
  position of the fact's first token).
  """
  B, N = tokens_BxN.shape
  if chunks < 2:
    raise ValueError(f"the facts task needs at least 2 chunks (a fact before the question), got {chunks}")
  if N % chunks:
    raise ValueError(f"the facts task: sequence length {N} is not divisible into {chunks} chunks")
  L, F = N // chunks, fact_length(key_tokens, answer_tokens)
  if F > L:
    raise ValueError(f"the facts task: a fact of {F} tokens does not fit a chunk of {L}")
  allowed = np.setdiff1d(np.arange(vocab_size), np.asarray(special_ids))  # ids a word may take
  if not 0 <= answer_ids <= len(allowed):
    raise ValueError(f"the facts task: {answer_ids} answer ids asked of {len(allowed)} non-special ids")
  answers = allowed[:answer_ids] if answer_ids else allowed  # Y's ids: the first `answer_ids` (0: all)
  offset_key, x_key, y_key = jax.random.split(key, 3)
  distance_B = jnp.asarray(distances(B, chunks))
  offset_B = jax.random.randint(offset_key, (B,), 0, L - F + 1)
  fact_start_B = (chunks - 1 - distance_B) * L + offset_B
  x_BxX = jnp.asarray(allowed)[jax.random.randint(x_key, (B, key_tokens), 0, len(allowed))]
  y_BxY = jnp.asarray(answers)[jax.random.randint(y_key, (B, answer_tokens), 0, len(answers))]
  marker_Bx1 = jnp.full((B, 1), marker_id, tokens_BxN.dtype)
  fact_BxF = jnp.concatenate([marker_Bx1, x_BxX.astype(tokens_BxN.dtype), marker_Bx1,
                              y_BxY.astype(tokens_BxN.dtype)], axis=1)
  rows_Bx1 = jnp.arange(B)[:, None]
  fact_BxF_positions = fact_start_B[:, None] + jnp.arange(F)[None, :]
  question_F = np.arange(N - F, N)  # the last F positions: inside the last chunk, as F <= L
  inputs = tokens_BxN.at[rows_Bx1, fact_BxF_positions].set(fact_BxF).at[:, question_F].set(fact_BxF)
  input_mask = (mask_BxN.at[rows_Bx1, fact_BxF_positions].set(1).at[:, question_F].set(1))
  weights = jnp.zeros(mask_BxN.shape, jnp.float32).at[:, N - answer_tokens:].set(1.0)
  return {"inputs": inputs, "targets": inputs, "weights": weights, "input_mask": input_mask,
          "distance": distance_B, "fact_start": fact_start_B}
