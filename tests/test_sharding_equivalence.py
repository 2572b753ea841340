"""Sharding that holds: the loop's own Trainer (data, mesh, shardings, jitted steps) trains the same
on one device and on 8 virtual CPU devices as data=8, fsdp=8 and data=2 x tensor=4.

The one-device run's initial state is placed on each mesh (the sharded initialization itself is
compared once, for the transformer CLM under fsdp=8, where it is bitwise equal). Models have one
layer per tower, to keep the 24 compilations short.

Tolerances: sharded matmuls and reductions sum in another order (float32), so losses and gradient
norms agree to rtol 1e-5 after each of 4 AdamW steps at lr 3e-3. Parameters are compared as a whole:
the norm of their difference must stay under 1e-3 of the norm of how far training moved them. An
element-wise bound cannot be tight: Adam divides by sqrt(v) + eps, so an element whose gradient is
near zero moves by up to lr per step in a direction set by summation noise (measured: one element of
the memory mixer off by 1.7e-4 under data=2 x tensor=4, while its losses agreed to 7.5e-8). A wrong
reduction (a missing all-reduce, a mean taken twice) changes the gradient norm or the losses by far
more than 1e-5. `-s` prints each case's figures.
"""

import jax
import numpy as np
import pytest

from conftest import load_config
from memjax.objectives import curriculum
from memjax.training import loop, memory_report

STEPS = 4
MESHES = {"data=8": dict(data=8, fsdp=1, tensor=1), "fsdp=8": dict(data=1, fsdp=8, tensor=1),
          "data=2 x tensor=4": dict(data=2, fsdp=1, tensor=4)}
MODELS = [f"{task}.py:tiny,family={family}" for task in ("clm", "autoencoder", "memory")
          for family in ("transformer", "mixer")]


def config(spec, mesh):
  cfg = load_config(spec)
  cfg.mesh.update(mesh)
  for tower in ("model", "encoder", "decoder"):
    if tower in cfg:
      cfg[tower].n_layers = 1
  return cfg


def train(cfg, devices, initial):
  """Losses of STEPS training steps from `initial` and the final state, on `devices` as cfg.mesh."""
  trainer = loop.Trainer(cfg, devices=devices)
  state, losses = jax.device_put(initial, trainer.shardings), []
  for step in range(STEPS):
    objective = curriculum.stage_at(trainer.stages, step).objective
    state, metrics = trainer.train_step(objective)(state, trainer.next_batch())
    losses.append((float(metrics["loss"]), float(metrics["grad_norm"])))
  return losses, state, trainer


def norm(tree):
  return float(np.sqrt(sum(np.sum(np.square(x, dtype=np.float64)) for x in jax.tree.leaves(tree))))


ONE_DEVICE = dict(data=1, fsdp=1, tensor=1)


@pytest.mark.parametrize("spec", MODELS)
def test_sharded_training_equals_one_device(spec, data_cache):
  one = loop.Trainer(config(spec, ONE_DEVICE), devices=jax.devices()[:1])
  initial = jax.device_get(one.init_state())
  losses, state, _ = train(config(spec, ONE_DEVICE), jax.devices()[:1], initial)
  params = jax.device_get(state.params)
  for name, mesh in MESHES.items():
    sharded_losses, sharded, trainer = train(config(spec, mesh), jax.devices(), initial)
    sharded_params = jax.device_get(sharded.params)
    worst = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(a - b).max()), sharded_params, params)))
    moved = norm(jax.tree.map(np.subtract, params, initial.params))
    off = norm(jax.tree.map(np.subtract, sharded_params, params)) / moved
    print(f"{spec} {name}: loss rel {max(abs(a[0] / b[0] - 1) for a, b in zip(sharded_losses, losses)):.1e}, "
          f"grad norm rel {max(abs(a[1] / b[1] - 1) for a, b in zip(sharded_losses, losses)):.1e}, "
          f"params off {off:.1e} of their movement (worst element {worst:.1e})")
    np.testing.assert_allclose(sharded_losses, losses, rtol=1e-5, err_msg=name)
    assert off < 1e-3, name
    if name == "fsdp=8":  # the arrays the step returned, not only the planned shardings
      actual = jax.tree.map(lambda x: x.sharding, sharded.params)
      assert memory_report.replicated_large(sharded.params, actual, trainer.mesh, min_size=1024) == []


def test_sharded_initialization_equals_one_device(data_cache):
  spec = "clm.py:tiny"
  one = jax.device_get(loop.Trainer(config(spec, ONE_DEVICE), devices=jax.devices()[:1]).init_state())
  sharded = loop.Trainer(config(spec, MESHES["fsdp=8"])).init_state()
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(sharded), one)


def test_a_replicated_large_parameter_is_named():
  from jax.sharding import NamedSharding, PartitionSpec as P

  from memjax.training import sharding

  mesh = jax.make_mesh((8,), ("fsdp",))
  params = {"w": np.zeros((64, 32)), "odd": np.zeros((35, 35)), "small": np.zeros((8,)),
            "split": np.zeros((64, 32))}
  shardings = {"w": NamedSharding(mesh, P()), "odd": NamedSharding(mesh, P()),
               "small": NamedSharding(mesh, P()), "split": NamedSharding(mesh, P("fsdp"))}
  assert memory_report.replicated_large(params, shardings, mesh, min_size=64) == ["w (64, 32)"]
  assert sharding.param_spec("decoder/blocks/mix/weight", (2, 1, 1, 32, 32),
                             jax.make_mesh((1, 8, 1), sharding.MESH_AXES)) == P(None, None, None, "tensor", "fsdp")


def test_the_run_prints_its_memory_per_device(data_cache):
  cfg = config("clm.py:tiny", MESHES["fsdp=8"])
  initial = jax.device_get(loop.Trainer(config("clm.py:tiny", ONE_DEVICE), devices=jax.devices()[:1]).init_state())
  _, state, trainer = train(cfg, jax.devices(), initial)
  compiled = trainer.train_step("clm").lower(state, trainer.next_batch()).compile()
  text = memory_report.report(state, trainer.shardings, trainer.mesh, compiled)
  first = jax.devices()[0]
  held = sum(shard.data.nbytes for x in jax.tree.leaves(state.params) for shard in x.addressable_shards
             if shard.device == first)
  total = sum(x.nbytes for x in jax.tree.leaves(state.params))
  assert memory_report.device_bytes(state.params) == held < total / 6  # large arrays split 8 ways
  assert f"parameters {memory_report.size(held)}" in text
  assert "train step: arguments" in text and "peak about" in text
  assert "replicated" not in text
