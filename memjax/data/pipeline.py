"""Grain input pipeline: token cache -> pack (or truncate/pad) -> shuffle -> global batch -> this
process's rows.

Examples are {'tokens': int32 [T], 'mask': float32 [T]}, with mask 0 on padding. Everything is a
`grain.MapDataset` of integer indices until the final `to_iter_dataset()`, so the pipeline is
deterministic for a seed and its iterator state (a position) is saved in checkpoints. The shuffle
and the batching are global (the same in every process), and each process then reads only its rows
of each batch: a global batch holds the same examples whatever the number of processes.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Literal

import grain
import numpy as np

from memjax.data.tokens import Split

Mode = Literal["pack", "pad"]
MODES = ("pack", "pad")
PAD_SIDES = ("left", "right")


@dataclasses.dataclass(frozen=True)
class PackedWindow:
  """Example i is tokens [i*T, (i+1)*T) of the split's stream (documents joined by end-of-text)."""

  tokens: np.ndarray
  n_ctx: int

  def __call__(self, index: int) -> dict[str, np.ndarray]:
    window = np.asarray(self.tokens[index * self.n_ctx:(index + 1) * self.n_ctx], np.int32)
    return {"tokens": window, "mask": np.ones(self.n_ctx, np.float32)}


@dataclasses.dataclass(frozen=True)
class PaddedDocument:
  """Example i is document i, truncated to T tokens and padded on the left or right."""

  split: Split
  n_ctx: int
  pad_id: int
  pad_side: str

  def __call__(self, index: int) -> dict[str, np.ndarray]:
    doc = np.asarray(self.split.document(index)[:self.n_ctx], np.int32)
    pad = self.n_ctx - len(doc)
    tokens = np.full(self.n_ctx, self.pad_id, np.int32)
    mask = np.zeros(self.n_ctx, np.float32)
    span = slice(pad, None) if self.pad_side == "left" else slice(0, len(doc))
    tokens[span], mask[span] = doc, 1.0
    return {"tokens": tokens, "mask": mask}


Example = Callable[[int], dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Rows:
  """Reads rows [start, stop) of a global batch of example indices, stacked into one local batch."""

  example: Example
  start: int
  stop: int

  def __call__(self, indices_B: np.ndarray) -> dict[str, np.ndarray]:
    rows = [self.example(int(i)) for i in indices_B[self.start:self.stop]]
    return {key: np.stack([row[key] for row in rows]) for key in rows[0]}


def reader(split: Split, *, n_ctx: int, mode: Mode, pad_id: int, pad_side: str) -> tuple[int, Example]:
  """(number of examples, example i) of the split."""
  if mode not in MODES:
    raise ValueError(f"data.mode must be one of {MODES}, got {mode!r}")
  if pad_side not in PAD_SIDES:
    raise ValueError(f"data.pad_side must be one of {PAD_SIDES}, got {pad_side!r}")
  if mode == "pack":
    return split.n_tokens // n_ctx, PackedWindow(split.tokens, n_ctx)
  return split.n_documents, PaddedDocument(split, n_ctx, pad_id, pad_side)


def examples(split: Split, *, n_ctx: int, mode: Mode, pad_id: int, pad_side: str) -> grain.MapDataset:
  """The split as a random-access dataset of single examples."""
  n, example = reader(split, n_ctx=n_ctx, mode=mode, pad_id=pad_id, pad_side=pad_side)
  return grain.MapDataset.range(n).map(example)


def batches(split: Split, *, n_ctx: int, mode: Mode, pad_id: int, pad_side: str, batch_size: int,
            seed: int, train: bool, rows: tuple[int, int] | None = None,
            name: str = "data") -> grain.IterDataset:
  """Rows [start, stop) (default: all) of each global batch of `batch_size` examples.

  Training batches are shuffled (a new order every epoch) and repeat forever; evaluation batches
  run once through the split in order. Only the examples of this process's rows are read.
  """
  start, stop = rows if rows is not None else (0, batch_size)
  if not 0 <= start < stop <= batch_size:
    raise ValueError(f"rows [{start}, {stop}) are not inside a batch of {batch_size}")
  n, example = reader(split, n_ctx=n_ctx, mode=mode, pad_id=pad_id, pad_side=pad_side)
  if n < batch_size:
    raise ValueError(f"the {name} split holds {n} examples of {n_ctx} tokens, fewer than one "
                     f"batch of {batch_size}: use more data or a smaller batch/n_ctx")
  indices = grain.MapDataset.range(n)
  if train:
    indices = indices.shuffle(seed).repeat()
  return indices.batch(batch_size, drop_remainder=True).map(Rows(example, start, stop)).to_iter_dataset()
