"""Where a traced computation runs: its mesh, the mesh's axes, its platform.

The mesh's axis names are one convention, here: the training mesh (memjax/training/sharding.py),
the kernels that shard_map over it and the layers that constrain their activations all read them.
The platform is the mesh's devices' when there is a mesh (a CPU process compiling for a TPU topology
targets TPU), else this process's default backend.
"""

from __future__ import annotations

import math

import jax
from jax.sharding import PartitionSpec as P

MESH_AXES: tuple[str, ...] = ("data", "fsdp", "tensor")
BATCH_AXES: tuple[str, ...] = ("data", "fsdp")  # a batch is split over both
HEAD_AXIS = "tensor"


def mesh_of(x: jax.Array) -> jax.sharding.AbstractMesh:
  """The context's mesh (`jax.set_mesh`, `jax.sharding.use_abstract_mesh`), else the one x's type
  carries (inside `jax.jit` with inputs on a mesh), else the empty mesh."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    mesh = getattr(getattr(jax.typeof(x), "sharding", None), "mesh", mesh)
  return mesh


def platform_of(x: jax.Array) -> str:
  """'cpu', 'gpu' or 'tpu': the platform x is computed on."""
  mesh = mesh_of(x)
  device = None if mesh.empty else getattr(mesh, "abstract_device", None)
  return device.platform if device is not None else jax.default_backend()


def constrain_batch(x_BxS: jax.Array) -> jax.Array:
  """`x` with its leading (batch) axis split over the context mesh's batch axes, so that XLA keeps
  every activation split as its batch is, never replicated. No mesh in context: `x` as it is."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return x_BxS
  axes = tuple(a for a in BATCH_AXES if a in mesh.axis_names and a not in mesh.manual_axes
               and mesh.shape[a] > 1)
  if not axes or x_BxS.shape[0] % math.prod(mesh.shape[a] for a in axes):
    return x_BxS
  return jax.lax.with_sharding_constraint(x_BxS, P(axes))
