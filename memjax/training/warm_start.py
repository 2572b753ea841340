"""Warm start: a run whose trainable parameters start from those of a previous run.

`train.init_from=DIR` (a memjax workdir) chains runs the way the reference chains curriculum stages:
the new run loads, from DIR's latest checkpoint, every top-level parameter group (decoder, head,
bridge, ...) it trains and DIR holds, with fresh optimizer state and schedule. A group DIR lacks keeps
its fresh initialization (so a no-memory decoder can start from a memory model's decoder); groups
that differ in shape are an error. Frozen parameters come from `encoder.checkpoint` as usual.
"""

from __future__ import annotations

from typing import Any

from etils import epath

from memjax.training import checkpoint, run_folder


def load(path: str, params: dict[str, Any], target: dict[str, Any], tokenizer_digest: str) -> dict[str, Any]:
  """`params` with the groups found in the run at `path` replaced by its trained values.

  `target` holds the abstract (sharded) arrays of `params`.
  """
  root = epath.Path(path)
  if not (root / run_folder.CONFIG_JSON).exists():
    raise FileNotFoundError(f"train.init_from={path!r} is not a memjax workdir (no {run_folder.CONFIG_JSON})")
  if run_folder.tokenizer_digest(root) != tokenizer_digest:
    raise ValueError(f"train.init_from={path!r} was trained with a different tokenizer than this run's")
  missing = f"train.init_from={path!r} holds no checkpoint"
  with checkpoint.latest(root / run_folder.CHECKPOINTS, missing) as (mngr, step):
    stored = checkpoint.stored_shapes(mngr, step, wanted=params)
    groups = [key for key in params if any(name.startswith(f"params/{key}/") for name in stored)]
    if not groups:
      raise ValueError(f"train.init_from={path!r} holds none of this run's trainable parameter groups "
                       f"{sorted(params)}")
    restored = checkpoint.restore(mngr, step, {"params": {key: target[key] for key in groups}})
  return params | restored["params"]
