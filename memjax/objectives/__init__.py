"""Training objectives: which views of a batch the model sees and which loss terms score them.

  clm          next-token prediction on the text
  autoencode   regenerate every token from one embedding (autoencoders and information probes)
  copy         first half repeated; predict the copied half (information retention)
  blank_copy   copy with the copied half's inputs blanked, so only memories carry the information
  combined     clm + copy on the same batch, both terms reported (weights objective.clm_weight,
               objective.copy_weight; the copy view objective.combined_copy: copy or blank_copy)
  retrieval    InfoNCE single-embedding 7-gram retrieval among a batch's documents, alone or beside
               the built-in objective objective.retrieval_base (objectives/retrieval.py)

User objectives are `Objective` values too (see memjax/api.py and docs/api.md).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, Union

import jax
from flax import nnx

from memjax import importing
from memjax.objectives import views
from memjax.objectives.terms import (Batch, Metrics, Term, compose, next_token_loss,
                                     on_view, reconstruction_loss)

OBJECTIVES: tuple[str, ...] = ("clm", "autoencode", "copy", "blank_copy", "combined", "retrieval")
COPY_VIEWS: tuple[str, ...] = ("copy", "blank_copy")

View = Callable[[Batch], Batch]
Outputs = Mapping[str, jax.Array]
Forward = Callable[[nnx.Module, Batch], Outputs]


def call_model(model: nnx.Module, view: Batch) -> Outputs:
  """The default forward pass of a view: the model on its `inputs` [B, T] -> {'logits' [B, T, V], ...},
  with its `input_mask` (when the view has one), so that transformers never attend to padding."""
  return model(view["inputs"], view["input_mask"]) if "input_mask" in view else model(view["inputs"])


@dataclasses.dataclass(frozen=True, eq=False)
class Objective:
  """Named batch views, each run through the model once, scored by a composed loss.

  views:   name -> view, a pure function of the data batch {'tokens' [B, T], 'mask' [B, T],
           'rng' (a PRNG key, fresh every step)} returning what that view's forward pass and loss
           terms read (the built-in views: {'inputs', 'targets', 'weights'}, all [B, T]).
  loss:    `(outputs, viewed, step) -> (total, metrics)`, outputs and viewed keyed by view name;
           usually `compose({...})`.
  forward: how the model runs on a view, `(model, view) -> outputs`; one function for every view
           or a mapping of some views to theirs (the others call `model(view['inputs'])`).
  """

  name: str
  views: Mapping[str, View]
  loss: Callable[[Any, Any, jax.Array], tuple[jax.Array, Metrics]]
  forward: Union[Forward, Mapping[str, Forward]] = call_model

  def __post_init__(self):
    if not isinstance(self.name, str) or not self.name or "/" in self.name:
      raise ValueError(f"an objective's name must be a non-empty string without '/', got {self.name!r}")
    if not isinstance(self.views, Mapping) or not self.views:
      raise ValueError(f"objective {self.name!r} needs a mapping of at least one view")
    for name, view in self.views.items():
      if not callable(view):
        raise TypeError(f"objective {self.name!r}: view {name!r} is not callable: {view!r}")
    if not callable(self.loss):
      raise TypeError(f"objective {self.name!r}: loss is not callable: {self.loss!r}")
    if isinstance(self.forward, Mapping):
      unknown = set(self.forward) - set(self.views)
      if unknown:
        raise ValueError(f"objective {self.name!r}: forward names views it does not have: {sorted(unknown)}")
    elif not callable(self.forward):
      raise TypeError(f"objective {self.name!r}: forward is not callable: {self.forward!r}")

  def forward_of(self, view: str) -> Forward:
    if isinstance(self.forward, Mapping):
      return self.forward.get(view, call_model)
    return self.forward

  def __call__(self, model: nnx.Module, batch: Batch, step: jax.Array,
               rng: jax.Array | None = None) -> tuple[jax.Array, Metrics]:
    batch = {**batch, "rng": jax.random.PRNGKey(0) if rng is None else rng}
    viewed = {name: view(batch) for name, view in self.views.items()}
    outputs = {name: self.forward_of(name)(model, batch_view) for name, batch_view in viewed.items()}
    return self.loss(outputs, viewed, step)


def copy_view(which: str, cfg: Any, *, blank_id: int, delimiter_id: int) -> View:
  """The copy view `which` ('copy', 'blank_copy' or a view's import path 'package.module:view')."""
  if importing.is_import_path(which):
    view = importing.load(which, "copy view")
    if not callable(view):
      raise ValueError(f"copy view {which!r} is not a view (a function of the batch): {view!r}")
    return view
  if which not in COPY_VIEWS:
    raise ValueError(f"the copy view must be one of {COPY_VIEWS} or an import path, got {which!r}")
  view = functools.partial(views.copy, delimiter_id=delimiter_id,
                           delimiter_tokens=cfg.copy_delimiter_tokens)
  return functools.partial(view, blank_id=blank_id) if which == "blank_copy" else view


def build(name: str, cfg: Any, *, task: str, blank_id: int, delimiter_id: int) -> Objective:
  """The objective `name` configured by `cfg` (the config's `objective` section)."""
  if name not in OBJECTIVES:
    raise ValueError(f"unknown objective {name!r}; choose from {OBJECTIVES}")
  if name == "retrieval":
    raise ValueError("the retrieval objective reads the whole run config (its document length, pad id): "
                     "objectives.lookup.resolve builds it (objectives/retrieval.py)")
  if (name == "autoencode") != (task == "autoencoder"):
    raise ValueError(f"objective {name!r} does not apply to task {task!r}: autoencoders (and probes) "
                     "train with 'autoencode', causal and memory models with the others")
  if name == "autoencode":
    return Objective(name, {"text": views.language_modelling},
                     compose({"reconstruction": on_view("text", reconstruction_loss)}))
  if name == "combined":
    copy = copy_view(cfg.get("combined_copy", "copy"), cfg, blank_id=blank_id, delimiter_id=delimiter_id)
    return Objective(name, {"text": views.language_modelling, "copy": copy},
                     compose({"clm": Term(on_view("text", next_token_loss), cfg.clm_weight),
                              "copy": Term(on_view("copy", next_token_loss), cfg.copy_weight)}))
  if name == "clm":  # the language-modelling view is called 'text' in every built-in objective
    return Objective(name, {"text": views.language_modelling},
                     compose({"clm": on_view("text", next_token_loss)}))
  view = copy_view(name, cfg, blank_id=blank_id, delimiter_id=delimiter_id)
  return Objective(name, {name: view}, compose({name: on_view(name, next_token_loss)}))
