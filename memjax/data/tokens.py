"""The token cache: a source tokenized once into a flat, memory-mapped token file.

Each document's tokens are followed by the end-of-text token. `offsets[i]` is where document i
starts; the held-out split is the first `eval_documents` documents (the paper holds out the first
50,000 FineWeb-Edu documents). The cache is keyed by the source and tokenizer fingerprints, is written
to a temporary folder and renamed into place, so an interrupted run never leaves a partial cache.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import pathlib
import shutil
from typing import Iterable, Iterator

import numpy as np
from tokenizers import Tokenizer
from tqdm.auto import tqdm

ENCODE_BATCH = 512


@dataclasses.dataclass(frozen=True)
class Split:
  """A contiguous run of documents: flat tokens, document offsets (from 0) and their UTF-8 bytes."""

  tokens: np.ndarray
  offsets: np.ndarray
  n_bytes: int

  @property
  def n_documents(self) -> int:
    return len(self.offsets) - 1

  @property
  def n_tokens(self) -> int:
    return int(self.offsets[-1])

  @property
  def bytes_per_token(self) -> float:
    return self.n_bytes / max(self.n_tokens, 1)

  def document(self, index: int) -> np.ndarray:
    return self.tokens[self.offsets[index]:self.offsets[index + 1]]


@dataclasses.dataclass(frozen=True)
class TokenizedCorpus:
  tokens: np.ndarray  # [n_tokens], uint16 or uint32
  offsets: np.ndarray  # [n_documents + 1], int64
  doc_bytes: np.ndarray  # [n_documents], int64

  def split(self, eval_documents: int) -> tuple[Split, Split]:
    """(train, eval): the first `eval_documents` documents are held out."""
    n_docs = len(self.doc_bytes)
    if not 0 < eval_documents < n_docs:
      raise ValueError(f"data.eval_documents={eval_documents} must be between 1 and the number of "
                       f"documents minus one ({n_docs - 1})")

    def part(lo: int, hi: int) -> Split:
      start, stop = int(self.offsets[lo]), int(self.offsets[hi])
      return Split(self.tokens[start:stop], self.offsets[lo:hi + 1] - start,
                   int(self.doc_bytes[lo:hi].sum()))

    return part(eval_documents, n_docs), part(0, eval_documents)


def _encode(tokenizer: Tokenizer, documents: Iterable[str], eos_id: int,
            dtype: np.dtype) -> Iterator[tuple[np.ndarray, list[int], list[int]]]:
  """Yields (flat tokens, per-document lengths, per-document bytes) for batches of documents."""
  documents = iter(documents)
  while batch := list(itertools.islice(documents, ENCODE_BATCH)):
    encodings = tokenizer.encode_batch(batch, add_special_tokens=False)
    ids = [np.asarray(e.ids + [eos_id], dtype) for e in encodings]
    yield np.concatenate(ids), [len(x) for x in ids], [len(d.encode("utf-8")) for d in batch]


def build(directory: pathlib.Path, tokenizer: Tokenizer, documents: Iterable[str], eos_id: int) -> None:
  """Tokenizes `documents` into `directory` (tokens.bin, offsets.npy, bytes.npy, meta.json)."""
  dtype = np.dtype(np.uint16 if tokenizer.get_vocab_size() <= 2**16 else np.uint32)
  tmp = directory.with_name(directory.name + ".tmp")
  shutil.rmtree(tmp, ignore_errors=True)
  tmp.mkdir(parents=True)
  lengths, doc_bytes = [], []
  with open(tmp / "tokens.bin", "wb") as out, tqdm(desc="tokenizing", unit=" docs") as progress:
    for flat, batch_lengths, batch_bytes in _encode(tokenizer, documents, eos_id, dtype):
      out.write(flat.tobytes())
      lengths += batch_lengths
      doc_bytes += batch_bytes
      progress.update(len(batch_lengths))
  if not lengths:
    shutil.rmtree(tmp)
    raise ValueError("the data source yielded no documents")
  np.save(tmp / "offsets.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
  np.save(tmp / "bytes.npy", np.asarray(doc_bytes, np.int64))
  (tmp / "meta.json").write_text(json.dumps({"dtype": dtype.name, "documents": len(lengths)}))
  tmp.rename(directory)


def load(directory: pathlib.Path) -> TokenizedCorpus:
  meta = json.loads((directory / "meta.json").read_text())
  tokens = np.memmap(directory / "tokens.bin", dtype=meta["dtype"], mode="r")
  return TokenizedCorpus(tokens, np.load(directory / "offsets.npy"), np.load(directory / "bytes.npy"))


def get(cache_dir: pathlib.Path, key: str, tokenizer: Tokenizer, documents: Iterable[str],
        eos_id: int) -> TokenizedCorpus:
  """The cached tokenization under `key`, building it first if needed."""
  directory = cache_dir / "tokens" / key
  if not (directory / "meta.json").is_file():
    directory.parent.mkdir(parents=True, exist_ok=True)
    build(directory, tokenizer, documents, eos_id)
  return load(directory)
