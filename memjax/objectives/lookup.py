"""Objectives by name: built-in names, objectives handed to the trainer, or import paths.

A curriculum stage names its objective in one of three ways, tried in this order:
  1. a name given with the run (`memjax.api.fit(cfg, workdir, objectives={'name': ...})`);
  2. a built-in objective (clm, autoencode, copy, blank_copy, combined, retrieval);
  3. an import path 'package.module:attribute' of user code.
A given or imported value is an `Objective`, or a function `(cfg, special) -> Objective` of the run
config and its special token ids (pad, eos, blank, sep).

`objective.extra_terms` adds user loss terms to every stage's objective, by import path:
'pkg.module:term[:weight],...'. A term is a `Term` (its own weight, e.g. an optax schedule) or a loss
function `(outputs, viewed) -> (scalar, metrics)` over the objective's views (both keyed by view
name, as `on_view` builds); a number after the path sets its weight (default 1). The term reports
under its attribute's name, e.g. `z_loss/loss`.
"""

from __future__ import annotations

import dataclasses

from typing import Any, Mapping

from memjax import importing
from memjax.objectives import OBJECTIVES, Objective, build, retrieval
from memjax.objectives.terms import ComposedLoss, Term, compose


def _materialize(value: Any, spec: str, cfg: Any, special: Any) -> Objective:
  if isinstance(value, Objective):
    return value
  if callable(value):
    made = value(cfg, special)
    if not isinstance(made, Objective):
      raise ValueError(f"objective {spec!r}: the function returned {type(made).__name__}, "
                       "not an memjax Objective")
    return made
  raise ValueError(f"objective {spec!r} is a {type(value).__name__}, not an Objective or a function "
                   "(cfg, special) -> Objective")


def extra_terms(spec: str) -> dict[str, Term]:
  """name -> Term for 'pkg.module:term[:weight],...' (objective.extra_terms)."""
  terms = {}
  for item in (item.strip() for item in spec.split(",") if item.strip()):
    path, weight = item, None
    head, _, tail = item.rpartition(":")
    if head.count(":") == 1:  # 'pkg.module:term:weight'
      path = head
      try:
        weight = float(tail)
      except ValueError:
        raise ValueError(f"objective.extra_terms item {item!r}: weight {tail!r} is not a number") from None
    value = importing.load(path, "loss term")
    if not isinstance(value, Term):
      if not callable(value):
        raise ValueError(f"loss term {path!r} is a {type(value).__name__}, not a Term or a function "
                         "(outputs, viewed) -> (loss, metrics)")
      value = Term(value)
    name = path.rpartition(":")[2].rpartition(".")[2]
    if name in terms:
      raise ValueError(f"objective.extra_terms names two terms called {name!r}")
    terms[name] = value if weight is None else Term(value.fn, weight)
  return terms


def with_terms(objective: Objective, terms: Mapping[str, Term]) -> Objective:
  """`objective` with `terms` added to its composed loss."""
  if not terms:
    return objective
  if not isinstance(objective.loss, ComposedLoss):
    raise ValueError(f"objective.extra_terms: objective {objective.name!r} has a loss that is not "
                     "composed (memjax compose), so terms cannot be added to it")
  clash = set(terms) & set(objective.loss.terms)
  if clash:
    raise ValueError(f"objective.extra_terms: objective {objective.name!r} already has terms {sorted(clash)}")
  return dataclasses.replace(objective, loss=compose({**objective.loss.terms, **terms}))


def resolve(spec: str, cfg: Any, *, special: Any, given: Mapping[str, Any] | None = None) -> Objective:
  """The objective a stage names (see the module docstring), with objective.extra_terms added."""
  return with_terms(_resolve(spec, cfg, special=special, given=given),
                    extra_terms(cfg.objective.get("extra_terms", "")))


def _resolve(spec: str, cfg: Any, *, special: Any, given: Mapping[str, Any] | None = None) -> Objective:
  given = given or {}
  if spec in given:
    return _materialize(given[spec], spec, cfg, special)
  if spec == "retrieval":
    return retrieval.build(cfg, pad_id=special.pad, base=lambda name: _resolve(name, cfg, special=special))
  if spec in OBJECTIVES:
    return build(spec, cfg.objective, task=cfg.task, blank_id=special.blank, delimiter_id=special.sep)
  if importing.is_import_path(spec):
    return _materialize(importing.load(spec, "objective"), spec, cfg, special)
  raise ValueError(f"unknown objective {spec!r}: name a built-in one {OBJECTIVES}"
                   + (f", one given to the run {tuple(given)}" if given else "")
                   + " or user code by import path 'package.module:attribute'")


def resolve_all(specs: list[str], cfg: Any, *, special: Any,
                given: Mapping[str, Any] | None = None) -> dict[str, Objective]:
  """spec -> Objective for every distinct spec; distinct specs must give distinctly named objectives."""
  resolved, names = {}, {}
  for spec in dict.fromkeys(specs):
    objective = resolve(spec, cfg, special=special, given=given)
    if objective.name in names:
      raise ValueError(f"objectives {names[objective.name]!r} and {spec!r} are both named "
                       f"{objective.name!r}; their metrics would collide")
    resolved[spec], names[objective.name] = objective, spec
  return resolved
