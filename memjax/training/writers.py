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


def drop_after(workdir: pathlib.Path, step: int) -> int:
  """Removes the metrics.jsonl records past `step` (written after the checkpoint a run resumes from,
  which the resumed run writes again); returns how many. Process 0 only."""
  path = workdir / METRICS_FILE
  if jax.process_index() > 0 or not path.exists():
    return 0
  lines = [line for line in path.read_text().splitlines() if line.strip()]
  kept = [line for line in lines if _step(line) <= step]
  if len(kept) < len(lines):
    fs.write_text(path, "".join(line + "\n" for line in kept))  # atomic locally, one upload to GCS
  return len(lines) - len(kept)


def _step(line: str) -> float:
  """A record's step; a line torn by a kill mid-write counts as past every step."""
  try:
    return json.loads(line)["step"]
  except (json.JSONDecodeError, KeyError, TypeError):
    return math.inf
