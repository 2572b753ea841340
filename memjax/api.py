"""memjax's public Python API: everything a user needs to train their own objectives, in one place.

  from memjax import api as mj
  results = mj.fit(cfg, "runs/mine", objectives={"mine": my_objective})

Training: `fit` (train, checkpoint, resume, evaluate; the same loop as `python -m memjax.train`),
`Run` (the same, step by step), `probe` (the paper's information probe), `load_config`.
Objectives: `Objective`, `builtin_objective`, `call_model`, `SpecialIds`.
Views (data batch {'tokens', 'mask', 'rng'} -> what the model sees): `language_modelling`, `copy`,
`blank_copy`. Loss terms ((outputs, view) -> (scalar, metrics)): `next_token_loss`,
`reconstruction_loss`; composition: `compose`, `Term`, `on_view`, `ComposedLoss`.
Metrics: `token_cross_entropy`, `token_accuracy`, `entropy_proportion`, `uniform_logit_entropy`,
`bits_per_byte`, `fraction_recovered`. Models: `encoder_embedding`; `StackConfig`, what a user's
block class receives when a config names it as a tower family (`model.family='pkg.mod:Block'`).

Why `fit` and not `train`: `memjax.train` is the command-line module (`python -m memjax.train`);
a function of the same name would be shadowed by (or shadow) that module. This module imports jax,
so it is not imported by `memjax/__init__.py`: the CLI tunes the process before jax starts.
See docs/api.md for a guide whose every snippet is run by tests/test_api_docs.py.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence, Union

import jax
import ml_collections
from flax import nnx

from memjax import models as _models
from memjax.config import load as load_config
from memjax.data import SpecialIds
from memjax.metrics.entropy import (bits_per_byte, entropy_proportion, fraction_recovered,
                                   token_accuracy, token_cross_entropy, uniform_logit_entropy)
from memjax.models.bridge import embedding_at
from memjax.models.config import StackConfig
from memjax.objectives import Forward, Objective, View, call_model
from memjax.objectives import lookup as _lookup
from memjax.objectives.terms import (Batch, ComposedLoss, LossTerm, Metrics, Term, Weight, compose,
                                     next_token_loss, on_view, reconstruction_loss)
from memjax.objectives.views import blank_copy, copy, language_modelling
from memjax.training.loop import Run, run as _run

Objectives = Union[None, Objective, Sequence[Objective], Mapping[str, Any]]

__all__ = [
    "Batch", "ComposedLoss", "Forward", "LossTerm", "Metrics", "Objective", "Objectives", "Run",
    "SpecialIds", "StackConfig", "Term", "View", "Weight", "bits_per_byte", "blank_copy", "builtin_objective",
    "call_model", "compose", "copy", "encoder_embedding", "entropy_proportion", "fit",
    "fraction_recovered", "language_modelling", "load_config", "next_token_loss", "on_view", "probe",
    "reconstruction_loss", "token_accuracy", "token_cross_entropy", "uniform_logit_entropy",
]


def fit(cfg: ml_collections.ConfigDict, workdir: str, objectives: Objectives = None) -> dict[str, Any]:
  """Trains (or resumes) the run `cfg` in `workdir`, exactly as `python -m memjax.train` does.

  `cfg.objective.stages` names the objective of each stage: a built-in one, an import path, or a
  name of `objectives` (one Objective, a list of them keyed by their names, or a mapping name ->
  Objective or function (cfg, special) -> Objective). Returns {'step', 'eval', 'train',
  'bytes_per_token'}, also written to `workdir/results.json`; every term's metrics are logged to
  metrics.jsonl and TensorBoard.
  """
  return _run(cfg, workdir, objectives)


def builtin_objective(name: str, cfg: ml_collections.ConfigDict, special: SpecialIds) -> Objective:
  """The built-in objective `name` (clm, autoencode, copy, blank_copy, combined, retrieval) of run
  config `cfg`, e.g. to extend it: `compose({**obj.loss.terms, 'aux': term})`."""
  if name not in _lookup.OBJECTIVES:
    raise ValueError(f"unknown built-in objective {name!r}; choose from {_lookup.OBJECTIVES}")
  return _lookup.resolve(name, cfg, special=special)


def encoder_embedding(model: nnx.Module, tokens_BxT: jax.Array, index: int | None = None) -> jax.Array:
  """The single embedding [B, D] of each sequence from the model's encoder tower (the one that is
  probed, exported and frozen), at position `index` (default: the model's `embed_index`, or -1).

  Autoencoders, parallel and oracle memory models and causal LMs (their decoder) have one; T must be
  the encoder's length (a memory model's chunk length).
  """
  encoder = _models.encoder_tower(model)
  if encoder is None:
    raise ValueError(f"{type(model).__name__} has no encoder tower (a memory model of kind 'none', "
                     "'full' or 'recurrent'?)")
  index = getattr(model, "embed_index", -1) if index is None else index
  return embedding_at(encoder(tokens_BxT), index)


def probe(cfg: ml_collections.ConfigDict, workdir: str, encoder: str = "") -> dict[str, Any]:
  """The paper's information probe (Fig. 1): a fresh decoder learns to regenerate the input from the
  frozen single embedding of `encoder` (a trained run's workdir or an exported encoder; '' for an
  untrained one). `cfg` is a probe config (configs/probe.py); results as `fit`, with
  `reconstruction/{loss, accuracy, entropy_proportion, bits_per_byte}`."""
  cfg = ml_collections.ConfigDict(cfg.to_dict())
  cfg.encoder.checkpoint, cfg.encoder.frozen = encoder, True
  return fit(cfg, workdir)
