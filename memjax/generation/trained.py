"""A trained run's model, context and tokenizer, read from its workdir (latest checkpoint)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax
import ml_collections
from flax import nnx
from tokenizers import Tokenizer

from memjax import fs, models
from memjax.training import checkpoint, encoders
from memjax.training.state import merge_trees, split_frozen, split_model


@dataclasses.dataclass
class TrainedModel:
  cfg: ml_collections.ConfigDict
  model: nnx.Module
  tokenizer: Tokenizer
  step: int

  @property
  def context(self) -> int:
    return self.cfg.data.n_ctx


def load(workdir: str) -> TrainedModel:
  """The model of the run in `workdir`, its parameters restored from the latest checkpoint."""
  root = fs.path(workdir)
  if not root.is_dir():
    raise FileNotFoundError(f"checkpoint folder {workdir!r} does not exist")
  if not (root / encoders.CONFIG_JSON).exists():
    raise FileNotFoundError(f"{workdir} is not a memjax workdir (it has no {encoders.CONFIG_JSON}): "
                            "give the --workdir of a `memjax.train` run")
  cfg = ml_collections.ConfigDict(json.loads((root / encoders.CONFIG_JSON).read_text()))
  if not (root / encoders.TOKENIZER_JSON).exists():
    raise FileNotFoundError(f"{workdir} has no {encoders.TOKENIZER_JSON}")
  tokenizer = Tokenizer.from_str((root / encoders.TOKENIZER_JSON).read_text())
  graphdef, abstract = split_model(nnx.eval_shape(lambda: models.build_model(cfg, nnx.Rngs(0))))
  frozen = ("encoder",) if "encoder" in cfg and cfg.encoder.get("frozen", False) else ()
  trainable, frozen_params = split_frozen(abstract, frozen)
  target = {"params": trainable} | ({"frozen": frozen_params} if frozen_params else {})
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = checkpoint.abstract(target, jax.tree.map(lambda _: device, target))
  if not (root / encoders.CHECKPOINTS).is_dir():
    raise FileNotFoundError(f"{workdir} holds no checkpoint")
  with checkpoint.latest(root / encoders.CHECKPOINTS, f"{workdir} holds no checkpoint") as (mngr, step):
    restored = checkpoint.restore(mngr, step, target)
  params = merge_trees(restored["params"], restored.get("frozen") or {})
  return TrainedModel(cfg, nnx.merge(graphdef, params), tokenizer, step)


def describe(trained: TrainedModel) -> dict[str, Any]:
  kind = trained.cfg.memory.kind if trained.cfg.task == "memory" else trained.cfg.task
  return {"task": trained.cfg.task, "kind": kind, "context": trained.context, "step": trained.step}
