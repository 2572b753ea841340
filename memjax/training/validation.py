"""Config values out of range, refused before a run writes anything (the error names every key).

Types are already enforced by ml_collections (an override of an int key must be an int); this
module checks the ranges that would otherwise train anyway (a negative learning rate ascends the
loss) or fail much later. Keys absent from a config are skipped.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import ml_collections

from memjax.models import quantize

Rule = tuple[str, Callable[[Any], bool], str]


def _positive(x: Any) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _non_negative(x: Any) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def _fraction(x: Any) -> bool:
  return _non_negative(x) and x < 1


RULES: tuple[Rule, ...] = (
    ("seed", _non_negative, ">= 0"),
    ("train.steps", _positive, "> 0"),
    ("train.batch_size", _positive, "> 0"),
    ("train.lr", _positive, "> 0 and finite"),
    ("train.warmup_steps", _non_negative, ">= 0"),
    ("train.weight_decay", _non_negative, ">= 0"),
    ("train.b1", _fraction, "in [0, 1)"),
    ("train.b2", _fraction, "in [0, 1)"),
    ("train.eps", _positive, "> 0"),
    ("train.clip_norm", _non_negative, ">= 0 (0: no clipping)"),
    ("train.log_every", _positive, "> 0"),
    ("train.eval_every", _positive, "> 0"),
    ("train.eval_batches", _positive, "> 0"),
    ("train.checkpoint_every", _positive, "> 0"),
    ("train.keep_checkpoints", lambda x: x is None or _positive(x), "> 0 (or None: keep all)"),
    ("data.n_ctx", _positive, "> 0"),
    ("data.vocab_size", _positive, "> 0"),
    ("data.eval_documents", _positive, "> 0 (evaluation needs held-out documents)"),
    ("data.max_documents", _non_negative, ">= 0 (0: all)"),
    ("objective.clm_weight", _non_negative, ">= 0"),
    ("objective.copy_weight", _non_negative, ">= 0"),
    ("objective.copy_delimiter_tokens", _non_negative, ">= 0"),
    ("memory.quantize", lambda x: x in quantize.MODES, f"one of {quantize.MODES}"),
    ("encoder.quantize", lambda x: x in quantize.MODES, f"one of {quantize.MODES}"),
)


def _lookup(cfg: ml_collections.ConfigDict, key: str) -> tuple[bool, Any]:
  node: Any = cfg
  for part in key.split("."):
    if part not in node:
      return False, None
    node = node[part]
  return True, node


def problems(cfg: ml_collections.ConfigDict) -> list[str]:
  """'key=value must be ...' for every value out of range."""
  found = []
  for key, ok, requirement in RULES:
    present, value = _lookup(cfg, key)
    if present and not ok(value):
      found.append(f"{key}={value!r} must be {requirement}")
  return found


def check(cfg: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming every config value out of range."""
  found = problems(cfg)
  if found:
    raise ValueError("config values out of range:\n  " + "\n  ".join(found))
