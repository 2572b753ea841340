"""The facts objective (issue 21 §3): answer questions about facts stated chunks earlier
(memjax/data/facts.py), scored on the answer tokens only, overall and by distance.

A stage names it by import path, `objective.stages=memjax.objectives.facts:objective` (STAGE), so
that the built-in objectives stay as they are; it reads the run's chunk count (memory.chunks: a
full-context or recurrent model is scored at the same distances as a memory model) and the task's
keywords of data/facts.plant from `objective.facts` (e.g. answer_ids, answer_tokens; the facts
experiment sets them), the plant's defaults where absent.
"""

from __future__ import annotations

import functools
from typing import Any

from memjax.data import facts
from memjax.metrics.distance import by_distance
from memjax.objectives import Objective
from memjax.objectives.terms import Batch, compose, next_token_loss, on_view

STAGE = "memjax.objectives.facts:objective"
NAME = "facts"


def view(batch: Batch, *, chunks: int, marker_id: int, vocab_size: int,
         special_ids: tuple[int, ...], **task: int) -> Batch:
  """The text batch with a fact and its question planted in every row (data/facts.plant), from the
  step's PRNG key: the seed's sequence in training, a function of the batch in evaluation."""
  return facts.plant(batch["tokens"], batch["mask"], batch["rng"], chunks=chunks, marker_id=marker_id,
                     vocab_size=vocab_size, special_ids=special_ids, **task)


def answer_loss(outputs: Any, batch: Batch, *, chunks: int) -> tuple[Any, dict[str, Any]]:
  """Next-token cross-entropy on the answer tokens (the view's weights), with its accuracy by
  distance (d1 .. d<K-1>)."""
  loss, metrics = next_token_loss(outputs, batch)
  return loss, metrics | by_distance(outputs["logits"], batch["targets"], batch["weights"],
                                     batch["distance"], range(1, chunks))


def objective(cfg: Any, special: Any) -> Objective:
  """The facts objective of a run config (`cfg.memory.chunks` chunks) and its special ids."""
  if "memory" not in cfg:
    raise ValueError("the facts objective needs a memory-model config (configs/memory.py): it places "
                     "facts by chunk (memory.chunks)")
  chunks = cfg.memory.chunks
  special_ids = (special.pad, special.eos, special.blank, special.sep)
  planted = functools.partial(view, chunks=chunks, marker_id=special.sep, vocab_size=cfg.data.vocab_size,
                              special_ids=special_ids, **dict(cfg.objective.get("facts", {})))
  return Objective(NAME, {NAME: planted},
                   compose({NAME: on_view(NAME, functools.partial(answer_loss, chunks=chunks))}))
