"""Data: sources, the embedded corpus, tokenizers, the token cache and the Grain pipeline."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

from tokenizers import Tokenizer

from memjax.data import pipeline, random_tokens, sources, tokenizer as tokenizers, tokens
from memjax.data.tokens import Split


@dataclasses.dataclass(frozen=True)
class SpecialIds:
  pad: int
  eos: int
  blank: int
  sep: int


# The ids of memjax's own trained BPE (its special tokens come first, in this order).
OWN_SPECIAL_IDS = SpecialIds(*(tokenizers.SPECIAL_TOKENS.index(t) for t in
                               (tokenizers.PAD, tokenizers.EOS, tokenizers.BLANK, tokenizers.SEP)))


@dataclasses.dataclass(frozen=True)
class Data:
  """A tokenized source, split into training and held-out documents."""

  tokenizer: Tokenizer
  tokenizer_digest: str
  special: SpecialIds
  train: Split
  eval: Split


def cache_root(configured: str = "") -> pathlib.Path:
  """Where tokenizers and token caches live: data.cache_dir, $MEMJAX_CACHE or ~/.cache/memjax."""
  return pathlib.Path(configured or os.environ.get("MEMJAX_CACHE", "~/.cache/memjax")).expanduser()


def special_ids(tokenizer: Tokenizer) -> SpecialIds:
  """Special ids, falling back (for a foreign tokenizer) to end-of-text, as the reference does."""
  eos = tokenizers.special_id(tokenizer, tokenizers.EOS, 0)
  pad = tokenizers.special_id(tokenizer, tokenizers.PAD, eos)
  return SpecialIds(pad=pad, eos=eos, blank=tokenizers.special_id(tokenizer, tokenizers.BLANK, pad),
                    sep=tokenizers.special_id(tokenizer, tokenizers.SEP, eos))


def prepare(cfg: Any) -> Data:
  """Resolves `cfg` (the config's `data` section) into a tokenizer and tokenized splits."""
  random = random_tokens.is_random(cfg.source)
  n_random, text = random_tokens.parse(cfg.source) if random else (0, cfg.source)
  source = sources.resolve(text, text_field=cfg.text_field, split=cfg.hf_split, streaming=cfg.hf_streaming)
  cache = cache_root(cfg.cache_dir)
  tokenizer, digest = tokenizers.get(source, cfg.vocab_size, cache, path=cfg.tokenizer,
                                     held_out=cfg.eval_documents, max_documents=cfg.max_documents)
  special = special_ids(tokenizer)
  if random:  # a byte-level BPE token's string has one character per byte
    token_bytes = [len(tokenizer.id_to_token(i) or "") for i in range(tokenizer.get_vocab_size())]
    corpus = random_tokens.corpus(n_random, tokenizer.get_vocab_size(), token_bytes)
  else:
    key = f"{source.fingerprint}-tok{digest}-max{cfg.max_documents}"
    corpus = tokens.get(cache, key, tokenizer, source.documents(cfg.max_documents), special.eos)
  train, held_out = corpus.split(cfg.eval_documents)
  return Data(tokenizer, digest, special, train, held_out)


def batches(data: Data, cfg: Any, *, split: str, batch_size: int, seed: int = 0,
            rows: tuple[int, int] | None = None):
  """Training ('train': shuffled, endless) or evaluation ('eval': one ordered pass) batches; only
  rows [start, stop) of each global batch (this process's share) when `rows` is given."""
  return pipeline.batches(getattr(data, split), n_ctx=cfg.n_ctx, mode=cfg.mode, pad_id=data.special.pad,
                          pad_side=cfg.pad_side, batch_size=batch_size, seed=seed,
                          train=split == "train", rows=rows, name=split,
                          full_length=split == "eval" and cfg.get("eval_full_length", False))
