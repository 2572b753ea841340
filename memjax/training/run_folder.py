"""A run's folder (its workdir): its layout, what it holds, and whether it holds the run a config
describes.

  WORKDIR/config.json      the config in force (what `check` compares a new config with)
  WORKDIR/tokenizer.json   the tokenizer (its digest guards every reuse of the run's weights)
  WORKDIR/checkpoints/     Orbax checkpoints (memjax/training/checkpoint.py)
  WORKDIR/metrics.jsonl    training and eval metrics (memjax/training/writers.py)
  WORKDIR/results.json     the final evaluation

A workdir may be a local path or a gs:// bucket (memjax/fs.py). Which config keys a resumed run may
change is declared once, in RESUMABLE below.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import ml_collections
from etils import epath
from tokenizers import Tokenizer

from memjax import config as mc
from memjax import fs
from memjax.data import tokenizer as tokenizers
from memjax.models.config import EXECUTION_FIELDS
from memjax.training import checkpoint

CONFIG_JSON = "config.json"
TOKENIZER_JSON = "tokenizer.json"
CHECKPOINTS = "checkpoints"
RESULTS_JSON = "results.json"

# Config keys (globs over dotted keys) a resumed run may change: how long, how often, where and how
# it executes, never what it trains. Comparisons of finished runs ignore them too.
RESUMABLE: tuple[str, ...] = (
    "train.steps", "train.log_every", "train.eval_every", "train.eval_batches",
    "train.checkpoint_every", "train.keep_checkpoints", "train.async_checkpoints", "train.progress",
    "train.microbatches", "data.cache_dir", "mesh.*",
    *(f"*.{field}" for field in EXECUTION_FIELDS))


def read_config(path: epath.PathLike, what: str = "a memjax workdir") -> ml_collections.ConfigDict:
  """The config.json of a run folder; a folder without one is refused naming `what` it should be."""
  config = fs.path(path) / CONFIG_JSON
  if not config.exists():
    raise FileNotFoundError(f"{path} is not {what} (it has no {CONFIG_JSON})")
  return ml_collections.ConfigDict(json.loads(config.read_text()))


def read_tokenizer(path: epath.PathLike) -> Tokenizer:
  tokenizer = fs.path(path) / TOKENIZER_JSON
  if not tokenizer.exists():
    raise FileNotFoundError(f"{path} has no {TOKENIZER_JSON}, so its token ids cannot be checked")
  return Tokenizer.from_str(tokenizer.read_text())


def tokenizer_digest(path: epath.PathLike) -> str:
  return tokenizers.digest(read_tokenizer(path))


def latest_step(directory: epath.PathLike) -> int:
  """The latest checkpoint step in a checkpoints folder; none is an error naming the folder."""
  with checkpoint.latest(directory, f"{directory} holds no checkpoint") as (_, step):
    return step


# ------------------------------------------------------------------------------ config comparison


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat |= _flatten(value, f"{prefix}{key}.")
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _defaults() -> dict[str, Any]:
  """The sections memjax.config builds for every task, at their defaults, flattened."""
  size = mc.SIZES["tiny"]
  return _flatten({"train": mc.train(size).to_dict(), "objective": mc.objective("clm").to_dict(),
                   "data": mc.data(size, "tiny").to_dict(), "init": "memjax",
                   "encoder": mc.encoder(size, "mixer").to_dict(), "memory": mc.memory().to_dict(),
                   "decoder": mc.decoder(size, "mixer").to_dict()})


def resumable(key: str) -> bool:
  return any(fnmatch.fnmatchcase(key, pattern) for pattern in RESUMABLE)


def added_at_default(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """Keys the saved config lacks (options added to memjax after it was written) that hold their
  default in the current one: the run behaves as it did, so they are no difference."""
  a, b, defaults = _flatten(saved), _flatten(current), _defaults()
  return sorted(key for key in set(b) - set(a) if key in defaults and defaults[key] == b[key])


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """Keys whose values differ between two configs, except resumable ones and options added later
  that hold their default."""
  a, b = _flatten(saved), _flatten(current)
  added = set(added_at_default(saved, current))
  return [f"{key}: workdir has {a.get(key)!r}, config has {b.get(key)!r}"
          for key in sorted(set(a) | set(b))
          if a.get(key) != b.get(key) and key not in added and not resumable(key)]


def check(workdir: epath.Path, cfg: ml_collections.ConfigDict) -> None:
  """Refuses a workdir that holds a different run (nothing is written or deleted)."""
  saved = workdir / CONFIG_JSON
  if saved.exists():
    differences = config_differences(json.loads(saved.read_text()), json.loads(cfg.to_json_best_effort()))
    if differences:
      raise ValueError(f"workdir {workdir} holds a run with a different config; use a new workdir "
                       "or the same config:\n  " + "\n  ".join(differences))
  elif (workdir / CHECKPOINTS).exists() and any((workdir / CHECKPOINTS).iterdir()):
    raise ValueError(f"workdir {workdir} holds checkpoints but no {CONFIG_JSON}; "
                     "refusing to resume a run of unknown config")
