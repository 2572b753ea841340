"""Device mesh (axes data, fsdp, tensor) and the sharding rules for parameters and batches.

Parameters are matched by path against `PARAM_RULES`; a rule names the mesh axis of each trailing
dimension (leading dimensions, such as the stacked-layer axis, stay unsharded). An axis that does not
divide its dimension is dropped, and unmatched parameters are replicated. Batches are split over
`data` and `fsdp` together.
"""

from __future__ import annotations

import math
import re
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from memjax.kernels.placement import BATCH_AXES, MESH_AXES  # the one convention of axis names

# (regex on the '/'-joined parameter path, mesh axis per trailing dimension)
PARAM_RULES: tuple[tuple[str, tuple[str | None, ...]], ...] = (
    (r"embed/embedding$", ("tensor", "fsdp")),  # [V, D]
    (r"head/kernel$", ("fsdp", "tensor")),  # [D, V]
    (r"attn/(q|k|v)/kernel$", ("fsdp", "tensor")),  # [D, heads * head_dim]
    (r"attn/o/kernel$", ("tensor", "fsdp")),
    (r"mlp/(gate|up)/kernel$", ("fsdp", "tensor")),  # [D, hidden]
    (r"mlp/up/bias$", ("tensor",)),
    (r"mlp/down/kernel$", ("tensor", "fsdp")),
    (r"mix/proj/kernel$", ("fsdp", "tensor")),
    (r"mix/out/kernel$", ("tensor", "fsdp")),
    (r"mix/weight$", (None, "tensor", "fsdp")),  # [heads, kernel, T_out, T_in]
    (r"(bridge/(down|up)|unroll/proj)/kernel$", ("fsdp", "tensor")),
)


def make_mesh(sizes: Any, devices: list[jax.Device] | None = None) -> Mesh:
  """A mesh with axes (data, fsdp, tensor); a size of -1 takes every remaining device."""
  devices = devices if devices is not None else jax.devices()
  shape = [int(sizes[axis]) for axis in MESH_AXES]
  if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
    raise ValueError(f"mesh sizes {dict(zip(MESH_AXES, shape))} need positive sizes and at most one -1")
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    shape[shape.index(-1)] = len(devices) // known
  if math.prod(shape) != len(devices):
    raise ValueError(f"mesh {dict(zip(MESH_AXES, shape))} needs {math.prod(shape)} devices, "
                     f"but {len(devices)} are available")
  slices = len({getattr(device, "slice_index", 0) for device in devices})
  if slices > 1:
    return _multislice_mesh(shape, devices, slices)
  return jax.make_mesh(tuple(shape), MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES),
                       devices=devices)


def _multislice_mesh(shape: list[int], devices: list[jax.Device], slices: int) -> Mesh:
  """TPU slices joined over the data-center network along the first batch axis they divide, so
  that only the gradient reduction crosses slices (maxtext's dcn_data_parallelism)."""
  from jax.experimental import mesh_utils

  axis = next((i for i, name in enumerate(MESH_AXES) if name in BATCH_AXES and shape[i] % slices == 0), None)
  if axis is None:
    raise ValueError(f"mesh {dict(zip(MESH_AXES, shape))}: {slices} slices need a data or fsdp size "
                     "divisible by the number of slices")
  dcn = [slices if i == axis else 1 for i in range(len(shape))]
  ici = [size // dcn[i] for i, size in enumerate(shape)]
  return Mesh(mesh_utils.create_hybrid_device_mesh(ici, dcn, devices), MESH_AXES,
              axis_types=(AxisType.Auto,) * len(MESH_AXES))


def path_name(path: tuple[Any, ...]) -> str:
  return "/".join(str(getattr(key, "key", getattr(key, "name", key))) for key in path)


def param_spec(name: str, shape: tuple[int, ...], mesh: Mesh) -> P:
  for pattern, axes in PARAM_RULES:
    if re.search(pattern, name) and len(shape) >= len(axes):
      lead = (None,) * (len(shape) - len(axes))
      fitted = tuple(a if a and shape[len(lead) + i] % mesh.shape[a] == 0 else None
                     for i, a in enumerate(axes))
      return P(*lead, *fitted)
  return P()


def tree_shardings(tree: Any, mesh: Mesh) -> Any:
  """NamedShardings for a pytree of (abstract) arrays: parameter rules by path, else replicated."""
  return jax.tree_util.tree_map_with_path(
      lambda path, x: NamedSharding(mesh, param_spec(path_name(path), np.shape(x), mesh)), tree)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def process_rows(mesh: Mesh, batch_size: int) -> tuple[int, int]:
  """Rows [start, stop) of a global batch that this process's devices hold (all of them in one
  process). The data pipeline reads only these rows; `global_batch` assembles them."""
  index_map = batch_sharding(mesh).addressable_devices_indices_map((batch_size,))
  spans = sorted({s[0].indices(batch_size)[:2] for s in index_map.values()})
  start, stop = spans[0][0], spans[0][1]
  for lo, hi in spans[1:]:
    if lo > stop:
      raise ValueError(f"process {jax.process_index()} holds rows {spans} of the batch, not one "
                       "block: order the mesh's devices by process")
    stop = max(stop, hi)
  return start, stop


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles each process's rows of the batch into global arrays split over data x fsdp."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}
