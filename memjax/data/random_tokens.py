"""A token source without language: uniform random token ids over a tokenizer's vocabulary.

Its per-token entropy is ln|V|, the cross-entropy of a model that predicts every token uniformly,
and no model can do better on held-out documents: a model that does (an autoencoder regenerating
random strings) has learned a code for arbitrary token strings, not the language (paper §2.2, the
trivial-encoding control). Named `random:DOCUMENTS:SOURCE` (memjax/data/sources.py): DOCUMENTS
documents of DOCUMENT_TOKENS tokens, over the vocabulary of SOURCE's tokenizer (data.tokenizer when
set), so that runs trained on SOURCE read it with their own token ids.
"""

from __future__ import annotations

import numpy as np

from memjax.data import tokens

DOCUMENT_TOKENS = 1024  # >= every preset's n_ctx, so that padded (paper) modes see full documents
PREFIX = "random:"
SEED = 0  # one fixed corpus: the held-out documents are the same for every run that reads it


def is_random(spec: str) -> bool:
  return spec.startswith(PREFIX)


def parse(spec: str) -> tuple[int, str]:
  """'random:4096:stdlib' -> (4096, 'stdlib'): the number of documents and the tokenizer's source."""
  count, _, source = spec[len(PREFIX):].partition(":")
  if not count.isdigit() or int(count) < 2 or not source:
    raise ValueError(f"random-token source {spec!r} must read random:DOCUMENTS:SOURCE (at least 2 "
                     "documents; SOURCE names the text whose tokenizer gives the vocabulary), "
                     "e.g. random:4096:stdlib")
  return int(count), source


def corpus(n_documents: int, vocab_size: int, token_bytes: np.ndarray | None = None,
           seed: int = SEED) -> tokens.TokenizedCorpus:
  """`n_documents` documents of DOCUMENT_TOKENS ids drawn uniformly from [0, vocab_size) (special
  tokens included: no id is excluded from the uniform draw). `token_bytes[i]`: the UTF-8 bytes of
  token i, for bits per byte (default 1)."""
  dtype = np.uint16 if vocab_size <= 2**16 else np.uint32
  ids = np.random.default_rng(seed).integers(0, vocab_size, n_documents * DOCUMENT_TOKENS, dtype=dtype)
  offsets = np.arange(n_documents + 1, dtype=np.int64) * DOCUMENT_TOKENS
  sizes = np.ones(vocab_size, np.int64) if token_bytes is None else np.asarray(token_bytes, np.int64)
  doc_bytes = sizes[ids].reshape(n_documents, DOCUMENT_TOKENS).sum(axis=1)
  return tokens.TokenizedCorpus(ids, offsets, doc_bytes)
