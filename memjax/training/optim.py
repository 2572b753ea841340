"""Optimizer from config: global-norm clipping, then AdamW on a warmup-then-decay schedule."""

from __future__ import annotations

from typing import Any

import optax

SCHEDULES = ("linear", "cosine")


def schedule(cfg: Any, steps: int | None = None) -> optax.Schedule:
  """Linear warmup from 0 to `lr` over `warmup_steps`, then linear or cosine decay to 0 at `steps`
  (`train.steps`, or the length of one curriculum stage trained as a fresh run)."""
  steps = cfg.steps if steps is None else steps
  if cfg.schedule not in SCHEDULES:
    raise ValueError(f"train.schedule must be one of {SCHEDULES}, got {cfg.schedule!r}")
  if not 0 <= cfg.warmup_steps < steps:
    what = "train.steps" if steps == cfg.steps else "the length of a curriculum stage"
    raise ValueError(f"train.warmup_steps={cfg.warmup_steps} must be in [0, {what}={steps})")
  decay_steps = steps - cfg.warmup_steps
  decay = (optax.linear_schedule(cfg.lr, 0.0, decay_steps) if cfg.schedule == "linear"
           else optax.cosine_decay_schedule(cfg.lr, decay_steps))
  warmup = optax.linear_schedule(0.0, cfg.lr, cfg.warmup_steps)
  return optax.join_schedules([warmup, decay], [cfg.warmup_steps])


def optimizer(cfg: Any, steps: int | None = None) -> optax.GradientTransformation:
  """The config's `train` section as an optax transformation (its schedule over `steps`)."""
  return optax.chain(
      optax.clip_by_global_norm(cfg.clip_norm) if cfg.clip_norm else optax.identity(),
      optax.adamw(schedule(cfg, steps), b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay))
