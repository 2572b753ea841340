"""How much of a text one memory holds: recovered tokens, information gain, and the ceiling.

The ceiling is what d numbers of 16 bits can hold at most: d x 16 bits, or d x 16 / log2|V| tokens
of a uniform-random text over a vocabulary of |V| tokens (a language text, compressible, may fit
more tokens in those bits, never more bits). Cramming (training/cramming.py) measures how close a
decoder lets one memory come to it (Kuratov et al., ACL 2025).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

BITS_PER_FLOAT = 16  # a bf16 / fp16 number
RECOVERED = 0.99  # a length fits when at least this fraction of its tokens comes back (median text)


def ceiling_bits(width: int, bits_per_float: int = BITS_PER_FLOAT) -> float:
  if width < 1:
    raise ValueError(f"a memory's width must be at least 1, got {width}")
  return float(width * bits_per_float)


def ceiling_tokens(width: int, vocab_size: int, bits_per_float: int = BITS_PER_FLOAT) -> float:
  """d x 16 / log2|V|: tokens of a uniform-random text that d floats can hold at most."""
  if vocab_size < 2:
    raise ValueError(f"a vocabulary needs at least 2 tokens, got {vocab_size}")
  return ceiling_bits(width, bits_per_float) / math.log2(vocab_size)


def information_gain_bits(ce_without_BxT: np.ndarray, ce_with_BxT: np.ndarray,
                          mask_BxT: np.ndarray | None = None) -> np.ndarray:
  """[B] bits each text's memory removes: its summed cross-entropy (nats) without the memory minus
  with it, over its unmasked tokens, in bits."""
  ce_without_BxT, ce_with_BxT = np.asarray(ce_without_BxT, np.float64), np.asarray(ce_with_BxT, np.float64)
  if ce_without_BxT.shape != ce_with_BxT.shape:
    raise ValueError(f"cross-entropies differ in shape: {ce_without_BxT.shape} vs {ce_with_BxT.shape}")
  mask_BxT = np.ones_like(ce_with_BxT) if mask_BxT is None else np.asarray(mask_BxT, np.float64)
  return ((ce_without_BxT - ce_with_BxT) * mask_BxT).sum(1) / math.log(2)


def recovered(predicted_BxT: np.ndarray, tokens_BxT: np.ndarray,
              mask_BxT: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(fraction of tokens recovered [B], exact match [B] bool) of greedy generations `predicted_BxT`."""
  predicted_BxT, tokens_BxT = np.asarray(predicted_BxT), np.asarray(tokens_BxT)
  if predicted_BxT.shape != tokens_BxT.shape:
    raise ValueError(f"generated and target tokens differ in shape: {predicted_BxT.shape} vs {tokens_BxT.shape}")
  mask_BxT = np.ones(tokens_BxT.shape, bool) if mask_BxT is None else np.asarray(mask_BxT) > 0
  right_BxT = (predicted_BxT == tokens_BxT) & mask_BxT
  fraction_B = right_BxT.sum(1) / np.maximum(mask_BxT.sum(1), 1)
  return fraction_B, (right_BxT | ~mask_BxT).all(1)


def capacity(lengths: Sequence[int], median_recovered: Sequence[float], threshold: float = RECOVERED) -> int | None:
  """The largest length whose median text has at least `threshold` of its tokens recovered greedily
  (None: no length does)."""
  if len(lengths) != len(median_recovered):
    raise ValueError(f"{len(lengths)} lengths but {len(median_recovered)} recovered fractions")
  fits = [n for n, r in zip(lengths, median_recovered) if r >= threshold]
  return max(fits) if fits else None
