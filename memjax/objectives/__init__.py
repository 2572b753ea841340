"""Training objectives: which views of a batch the model sees and which loss terms score them.

  clm          next-token prediction on the text
  autoencode   regenerate every token from one embedding (autoencoders and information probes)
  copy         first half repeated; predict the copied half (information retention)
  blank_copy   copy with the copied half's inputs blanked, so only memories carry the information
  combined     clm + copy on the same batch, both terms reported (weights objective.clm_weight,
               objective.copy_weight)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping

import jax
from flax import nnx

from memjax.objectives import views
from memjax.objectives.terms import (Batch, ComposedLoss, Metrics, Term, compose, next_token_loss,
                                     on_view, reconstruction_loss)

OBJECTIVES: tuple[str, ...] = ("clm", "autoencode", "copy", "blank_copy", "combined")


@dataclasses.dataclass(frozen=True)
class Objective:
  """Named batch views, each run through the model once, scored by a composed loss."""

  name: str
  views: Mapping[str, Callable[[Batch], Batch]]
  loss: ComposedLoss

  def __call__(self, model: nnx.Module, batch: Batch, step: jax.Array) -> tuple[jax.Array, Metrics]:
    viewed = {name: view(batch) for name, view in self.views.items()}
    outputs = {name: model(batch_view["inputs"], batch_view.get("input_mask"))
               for name, batch_view in viewed.items()}
    return self.loss(outputs, viewed, step)


def build(name: str, cfg: Any, *, task: str, blank_id: int, delimiter_id: int) -> Objective:
  """The objective `name` configured by `cfg` (the config's `objective` section)."""
  if name not in OBJECTIVES:
    raise ValueError(f"unknown objective {name!r}; choose from {OBJECTIVES}")
  if (name == "autoencode") != (task == "autoencoder"):
    raise ValueError(f"objective {name!r} does not apply to task {task!r}: autoencoders (and probes) "
                     "train with 'autoencode', causal and memory models with the others")
  if name == "autoencode":
    return Objective(name, {"text": views.language_modelling},
                     compose({"reconstruction": on_view("text", reconstruction_loss)}))
  copy = functools.partial(views.copy, delimiter_id=delimiter_id,
                           delimiter_tokens=cfg.copy_delimiter_tokens)
  if name == "blank_copy":
    copy = functools.partial(copy, blank_id=blank_id)
  if name == "combined":
    return Objective(name, {"text": views.language_modelling, "copy": copy},
                     compose({"clm": Term(on_view("text", next_token_loss), cfg.clm_weight),
                              "copy": Term(on_view("copy", next_token_loss), cfg.copy_weight)}))
  view = views.language_modelling if name == "clm" else copy
  return Objective(name, {name: view}, compose({name: on_view(name, next_token_loss)}))
