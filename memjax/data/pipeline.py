"""Grain input pipeline: token cache -> pack (or truncate/pad) -> shard per process -> shuffle -> batch.

Examples are {'tokens': int32 [T], 'mask': float32 [T]}, with mask 0 on padding. Everything is a
`grain.MapDataset` of integer indices until the final `to_iter_dataset()`, so the pipeline is
deterministic for a seed and its iterator state (a position) is saved in checkpoints.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

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
  """Example i is document documents[i], truncated to T tokens and padded on the left or right."""

  split: Split
  n_ctx: int
  pad_id: int
  pad_side: str
  documents: np.ndarray

  def __call__(self, index: int) -> dict[str, np.ndarray]:
    doc = np.asarray(self.split.document(int(self.documents[index]))[:self.n_ctx], np.int32)
    pad = self.n_ctx - len(doc)
    tokens = np.full(self.n_ctx, self.pad_id, np.int32)
    mask = np.zeros(self.n_ctx, np.float32)
    span = slice(pad, None) if self.pad_side == "left" else slice(0, len(doc))
    tokens[span], mask[span] = doc, 1.0
    return {"tokens": tokens, "mask": mask}


def examples(split: Split, *, n_ctx: int, mode: Mode, pad_id: int, pad_side: str,
             full_length: bool = False) -> grain.MapDataset:
  """The split as a random-access dataset of single examples (with `full_length`, in 'pad' mode,
  only the documents of at least n_ctx tokens: no padding, as the paper's evaluations)."""
  if mode not in MODES:
    raise ValueError(f"data.mode must be one of {MODES}, got {mode!r}")
  if pad_side not in PAD_SIDES:
    raise ValueError(f"data.pad_side must be one of {PAD_SIDES}, got {pad_side!r}")
  if mode == "pack":
    return grain.MapDataset.range(split.n_tokens // n_ctx).map(PackedWindow(split.tokens, n_ctx))
  lengths = np.diff(split.offsets)
  documents = np.flatnonzero(lengths >= n_ctx) if full_length else np.arange(split.n_documents)
  return grain.MapDataset.range(len(documents)).map(PaddedDocument(split, n_ctx, pad_id, pad_side, documents))


def batches(split: Split, *, n_ctx: int, mode: Mode, pad_id: int, pad_side: str, batch_size: int,
            seed: int, train: bool, process_index: int = 0, process_count: int = 1,
            name: str = "data", full_length: bool = False) -> grain.IterDataset:
  """Per-process batches of `batch_size // process_count` examples.

  Training batches are shuffled (a new order every epoch) and repeat forever; evaluation batches
  run once through the split in order.
  """
  if batch_size % process_count:
    raise ValueError(f"batch size {batch_size} is not divisible by the {process_count} processes")
  local_batch = batch_size // process_count
  dataset = examples(split, n_ctx=n_ctx, mode=mode, pad_id=pad_id, pad_side=pad_side,
                     full_length=full_length)
  dataset = dataset[process_index::process_count]
  if len(dataset) < local_batch:
    which = " full-length" if full_length and mode == "pad" else ""
    raise ValueError(f"the {name} split holds {len(dataset)}{which} examples of {n_ctx} tokens per process, "
                     f"fewer than one batch of {local_batch}: use more data or a smaller batch/n_ctx")
  if train:
    dataset = dataset.shuffle(seed).repeat()
  return dataset.batch(local_batch, drop_remainder=True).to_iter_dataset()
