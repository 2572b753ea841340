"""Byte-level BPE tokenizers (Hugging Face `tokenizers`): trained once per source and cached, or loaded.

A trained tokenizer reserves four special tokens, in this order: pad (0), end of text (1), blank (2,
the constant input of blank copy) and separator (3, the copy delimiter). A loaded `tokenizer.json`
may define any special tokens; ids the objectives need are then read from the config.
"""

from __future__ import annotations

import hashlib
import itertools
import pathlib

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from memjax import fs
from memjax.data.sources import Source

PAD, EOS, BLANK, SEP = "<|pad|>", "<|endoftext|>", "<|blank|>", "<|sep|>"
SPECIAL_TOKENS = (PAD, EOS, BLANK, SEP)


def train_bpe(documents, vocab_size: int) -> Tokenizer:
  """Trains a byte-level BPE of exactly `vocab_size` tokens (special tokens included)."""
  tokenizer = Tokenizer(models.BPE())
  tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tokenizer.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                show_progress=False)
  tokenizer.train_from_iterator(documents, trainer)
  if tokenizer.get_vocab_size() != vocab_size:
    raise ValueError(f"the corpus only supports a BPE vocabulary of {tokenizer.get_vocab_size()} "
                     f"tokens, fewer than data.vocab_size={vocab_size}: use a smaller vocabulary")
  return tokenizer


def load(path: str | pathlib.Path, vocab_size: int) -> Tokenizer:
  """Loads a `tokenizer.json` (a local path or a gs:// URL) and checks its vocabulary size."""
  path = fs.path(path)
  if not path.is_file():
    raise FileNotFoundError(f"tokenizer file {str(path)!r} does not exist")
  try:
    tokenizer = Tokenizer.from_str(path.read_text())
  except Exception as error:
    raise ValueError(f"{path} is not a Hugging Face tokenizer.json: {error}") from None
  if tokenizer.get_vocab_size() != vocab_size:
    raise ValueError(f"tokenizer {path} has a vocabulary of {tokenizer.get_vocab_size()} tokens but "
                     f"data.vocab_size is {vocab_size}; set data.vocab_size={tokenizer.get_vocab_size()}")
  return tokenizer


def get(source: Source, vocab_size: int, cache_dir: pathlib.Path, *, path: str = "",
        held_out: int = 0, max_documents: int = 0) -> tuple[Tokenizer, str]:
  """The tokenizer at `path`, else the cached (or newly trained) BPE of `source`.

  A trained tokenizer sees only the training documents (it skips the first `held_out`). Returns
  the tokenizer and a fingerprint of its vocabulary (for the token cache).
  """
  if path:
    tokenizer = load(path, vocab_size)
  else:
    name = f"bpe{vocab_size}-{source.fingerprint}-skip{held_out}-max{max_documents}.json"
    cached = cache_dir / "tokenizers" / name
    if cached.is_file():
      tokenizer = load(cached, vocab_size)
    else:
      documents = itertools.islice(source.documents(max_documents), held_out, None)
      tokenizer = train_bpe(documents, vocab_size)
      cached.parent.mkdir(parents=True, exist_ok=True)
      tokenizer.save(str(cached) + ".tmp")
      pathlib.Path(str(cached) + ".tmp").rename(cached)
  return tokenizer, digest(tokenizer)


def digest(tokenizer: Tokenizer) -> str:
  """A fingerprint of the tokenizer's vocabulary and rules (equal tokenizers, equal digests)."""
  return hashlib.sha1(tokenizer.to_str().encode()).hexdigest()[:16]


def special_id(tokenizer: Tokenizer, token: str, fallback: int) -> int:
  """The id of a special token, or `fallback` when the tokenizer does not define it."""
  token_id = tokenizer.token_to_id(token)
  return fallback if token_id is None else token_id
