"""Metric writers: JSON lines and TensorBoard events in the workdir (process 0 only), local or gs://."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Mapping

import jax
from tensorboardX import SummaryWriter

from memjax import fs

METRICS_FILE = "metrics.jsonl"


class MetricWriter:
  """Appends {'step', 'split', ...metrics} to metrics.jsonl and mirrors scalars to TensorBoard."""

  def __init__(self, workdir: pathlib.Path):
    self.enabled = jax.process_index() == 0
    if self.enabled:
      fs.register_tensorboard()
      self._jsonl = fs.AppendFile(workdir / METRICS_FILE)
      self._tensorboard = SummaryWriter(str(workdir / "tensorboard"))

  def write(self, step: int, split: str, metrics: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    scalars = {k: float(v) for k, v in metrics.items()}
    self._jsonl.write(json.dumps({"step": step, "split": split, **scalars}, allow_nan=True) + "\n")
    self._jsonl.flush()
    for name, value in scalars.items():
      if math.isfinite(value):
        self._tensorboard.add_scalar(f"{split}/{name}", value, step)

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tensorboard.close()


def read_metrics(workdir: pathlib.Path, split: str | None = None) -> list[dict[str, float]]:
  """The metrics.jsonl records of a workdir, optionally of one split ('train' or 'eval')."""
  path = workdir / METRICS_FILE
  records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
  return [r for r in records if split is None or r["split"] == split]
