"""Where a traced computation runs: its mesh and platform, as kernels choose by them.

The platform is the mesh's devices' when there is a mesh (a CPU process compiling for a TPU topology
targets TPU), else this process's default backend.
"""

from __future__ import annotations

import jax


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
