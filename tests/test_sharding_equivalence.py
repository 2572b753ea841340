"""Sharding that holds: the loop's own Trainer (data, mesh, shardings, jitted steps) trains the same
on one device and on 8 virtual CPU devices as data=8, fsdp=8 and data=2 x tensor=4.

The one-device run's initial state is placed on each mesh (the sharded initialization itself is
compared once, for the transformer CLM under fsdp=8, where it is bitwise equal). Models have one
layer per tower, to keep the 24 compilations short.

Tolerances: sharded matmuls and reductions sum in another order (float32), so losses agree to
rtol 1e-5 and parameters to atol 1e-4 after 4 AdamW steps at lr 3e-3. Adam divides by sqrt(v) + eps,
which amplifies the summation noise of near-zero gradients: the worst parameter measured differs by
3.5e-5 (memory mixer, data=2 x tensor=4; 2.0e-5 under fsdp=8; the other models 3e-8 to 3e-6), while
losses differ by at most 3.1e-7 relative. 1e-4 is 3 % of one lr-sized Adam step. `-s` prints each
case's figures.
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
    losses.append(float(metrics["loss"]))
  return losses, state, trainer


ONE_DEVICE = dict(data=1, fsdp=1, tensor=1)


@pytest.mark.parametrize("spec", MODELS)
def test_sharded_training_equals_one_device(spec, data_cache):
  one = loop.Trainer(config(spec, ONE_DEVICE), devices=jax.devices()[:1])
  initial = jax.device_get(one.init_state())
  losses, state, _ = train(config(spec, ONE_DEVICE), jax.devices()[:1], initial)
  params = jax.device_get(state.params)
  for name, mesh in MESHES.items():
    sharded_losses, sharded, trainer = train(config(spec, mesh), jax.devices(), initial)
    worst = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(a - b).max()),
                                             jax.device_get(sharded.params), params)))
    print(f"{spec} {name}: loss rel {max(abs(a / b - 1) for a, b in zip(sharded_losses, losses)):.1e}, "
          f"params abs {worst:.1e}")
    np.testing.assert_allclose(sharded_losses, losses, rtol=1e-5, err_msg=name)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-4, err_msg=name),
                 jax.device_get(sharded.params), params)
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
