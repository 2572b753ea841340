"""Objectives by name: built-in names, objectives handed to the trainer, or import paths.

A curriculum stage names its objective in one of three ways, tried in this order:
  1. a name given with the run (`memjax.api.fit(cfg, workdir, objectives={'name': ...})`);
  2. a built-in objective (clm, autoencode, copy, blank_copy, combined);
  3. an import path 'package.module:attribute' of user code.
A given or imported value is an `Objective`, or a function `(cfg, special) -> Objective` of the run
config and its special token ids (pad, eos, blank, sep).
"""

from __future__ import annotations

from typing import Any, Mapping

from memjax import importing
from memjax.objectives import OBJECTIVES, Objective, build


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


def resolve(spec: str, cfg: Any, *, special: Any, given: Mapping[str, Any] | None = None) -> Objective:
  """The objective a stage names (see the module docstring)."""
  given = given or {}
  if spec in given:
    return _materialize(given[spec], spec, cfg, special)
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
