"""Per-device memory of a run, printed once at start: parameters, optimizer state, compiled step.

Array sizes come from each leaf's sharding (the bytes of its largest shard), and the step's from
XLA's own accounting of the compiled executable (`memory_analysis`), so nothing is measured by
running. A large parameter replicated on every device of an fsdp mesh is named: it costs memory on
every device, usually because no sharding rule matched its path.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from memjax.training.sharding import path_name

LARGE = 2**14  # elements: parameters at least this big should not be replicated under fsdp


def size(n_bytes: float) -> str:
  """'812 B', '41.3 KiB', '1.2 GiB'."""
  for unit in ("B", "KiB", "MiB", "GiB"):
    if n_bytes < 1024 or unit == "GiB":
      return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
    n_bytes /= 1024
  raise AssertionError("unreachable")


def device_bytes(tree: Any) -> int:
  """Bytes one device holds of a pytree of (possibly abstract) arrays with shardings."""
  total = 0
  for x in jax.tree.leaves(tree):
    sharding = getattr(x, "sharding", None)
    shape = sharding.shard_shape(x.shape) if sharding is not None else np.shape(x)
    total += math.prod(shape) * np.dtype(x.dtype).itemsize
  return total


def replicated_large(params: Any, shardings: Any, mesh: jax.sharding.Mesh, axis: str = "fsdp",
                     min_size: int = LARGE) -> list[str]:
  """Parameters of at least `min_size` elements that mesh `axis` could split (it divides one of their
  dimensions) but that are not split over it: each device holds all of them."""
  n = mesh.shape[axis]
  found = []
  for (path, x), sharding in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(shardings)):
    axes = {a for entry in sharding.spec if entry for a in ((entry,) if isinstance(entry, str) else entry)}
    shape = tuple(np.shape(x))
    if math.prod(shape) >= min_size and axis not in axes and any(d % n == 0 for d in shape):
      found.append(f"{path_name(path)} {shape}")
  return found


def step_bytes(compiled: Any) -> dict[str, int]:
  """The compiled step's per-device bytes by kind, as XLA accounts them ({} where it does not)."""
  stats = compiled.memory_analysis()
  if stats is None:
    return {}
  return {"arguments": stats.argument_size_in_bytes, "outputs": stats.output_size_in_bytes,
          "aliased": stats.alias_size_in_bytes, "temporaries": stats.temp_size_in_bytes,
          "code": stats.generated_code_size_in_bytes}


def report(state: Any, shardings: Any, mesh: jax.sharding.Mesh, compiled: Any = None) -> str:
  """One paragraph: what each device holds, and the step's peak estimate."""
  parts = {"parameters": state.params, "optimizer state": state.opt_state, "frozen": state.frozen}
  held = ", ".join(f"{name} {size(device_bytes(tree))}" for name, tree in parts.items()
                   if jax.tree.leaves(tree))
  lines = [f"memory per device ({dict(mesh.shape)}): {held}"]
  step = step_bytes(compiled) if compiled is not None else {}
  if step:
    peak = step["arguments"] + step["outputs"] - step["aliased"] + step["temporaries"]
    lines.append("  train step: " + ", ".join(f"{k} {size(v)}" for k, v in step.items())
                 + f"; peak about {size(peak)}")
  if mesh.shape["fsdp"] > 1:
    replicated = replicated_large(state.params, shardings.params, mesh)
    if replicated:
      lines.append("  replicated on every device although fsdp could split them: " + ", ".join(replicated))
  return "\n".join(lines)
