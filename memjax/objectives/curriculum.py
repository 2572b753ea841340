"""Curricula: objectives switched at fixed steps inside one run, e.g. "blank_copy:2000,copy:2000,combined".

Every stage but the last names its length in steps; the last runs until `train.steps`. A stage's
objective may be user code by import path, 'my_project.objectives:contrastive:2000'. The stage of a
step is a pure function of the step, so a run resumed after a boundary continues in the right stage.
With `objective.restart_stages` each stage trains like a fresh run (the reference's chained runs):
its own warmup and decay over its length, and a new optimizer state at its first step.
"""

from __future__ import annotations

import dataclasses

from memjax.objectives import OBJECTIVES


@dataclasses.dataclass(frozen=True)
class Stage:
  objective: str
  start: int
  stop: int

  @property
  def steps(self) -> int:
    return self.stop - self.start


def split_length(item: str) -> tuple[str, str]:
  """'copy:100' -> ('copy', '100'); 'pkg.mod:attr:100' -> ('pkg.mod:attr', '100'); no length: ''."""
  head, colon, tail = item.rpartition(":")
  if colon and (tail.strip().isdigit() or head.strip() in OBJECTIVES):
    return head.strip(), tail.strip()
  return item, ""


def parse(spec: str, total_steps: int) -> tuple[Stage, ...]:
  """Parses 'name:steps,...,name' into consecutive stages covering [0, total_steps)."""
  items = [item.strip() for item in spec.split(",") if item.strip()]
  if not items:
    raise ValueError("objective.stages is empty: name at least one objective, e.g. 'clm'")
  stages, start = [], 0
  for position, item in enumerate(items):
    name, steps = split_length(item)
    last = position == len(items) - 1
    if not steps and not last:
      raise ValueError(f"curriculum stage {item!r} needs a length, e.g. '{name}:1000' "
                       "(only the last stage runs to train.steps)")
    try:
      stop = total_steps if last else start + int(steps)
    except ValueError:
      raise ValueError(f"curriculum stage {item!r}: {steps!r} is not a number of steps") from None
    if last and steps and int(steps) != total_steps - start:
      raise ValueError(f"the last curriculum stage {item!r} would end at step {start + int(steps)}, "
                       f"not at train.steps={total_steps}; drop its length or fix train.steps")
    if stop <= start:
      raise ValueError(f"curriculum stage {item!r} is empty (steps {start}..{stop}); "
                       f"train.steps={total_steps}")
    stages.append(Stage(name, start, stop))
    start = stop
  return tuple(stages)


def stage_at(stages: tuple[Stage, ...], step: int) -> Stage:
  """The stage that trains `step` (the last one for steps past the end)."""
  return next((stage for stage in stages if step < stage.stop), stages[-1])
