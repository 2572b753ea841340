"""A trained run's model, context and tokenizer, read from its workdir (latest checkpoint)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import ml_collections
from flax import nnx
from tokenizers import Tokenizer

from memjax import fs, models
from memjax.training import checkpoint, pretrained, program
from memjax.training import run_folder
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
  cfg = run_folder.read_config(root, "a memjax workdir: give the --workdir of a `memjax.train` run")
  tokenizer = run_folder.read_tokenizer(root)
  graphdef, abstract = split_model(nnx.eval_shape(lambda: models.build_model(cfg, nnx.Rngs(0))))
  # Split as the run kept them (program.py): frozen encoder parts, LoRA's frozen decoder weights.
  trainable, frozen_params = pretrained.adapters_only(
      *split_frozen(abstract, program.frozen_subtrees(cfg)), cfg)
  target = {"params": trainable} | ({"frozen": frozen_params} if frozen_params else {})
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = checkpoint.abstract(target, jax.tree.map(lambda _: device, target))
  if not (root / run_folder.CHECKPOINTS).is_dir():
    raise FileNotFoundError(f"{workdir} holds no checkpoint")
  with checkpoint.latest(root / run_folder.CHECKPOINTS, f"{workdir} holds no checkpoint") as (mngr, step):
    restored = checkpoint.restore(mngr, step, target)
  params = merge_trees(restored["params"], restored.get("frozen") or {})
  return TrainedModel(cfg, nnx.merge(graphdef, params), tokenizer, step)


def describe(trained: TrainedModel) -> dict[str, Any]:
  kind = trained.cfg.memory.kind if trained.cfg.task == "memory" else trained.cfg.task
  return {"task": trained.cfg.task, "kind": kind, "context": trained.context, "step": trained.step}
