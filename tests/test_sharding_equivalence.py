"""Sharding that holds: the loop's own Trainer (data, mesh, shardings, jitted steps) trains the same
on one device and on 8 virtual CPU devices as data=8, fsdp=8 and data=2 x tensor=4.

Tolerances: sharded matmuls and reductions sum in another order (float32), so losses agree to
rtol 2e-5 and parameters to atol 5e-5 after 4 AdamW steps at lr 3e-3 (measured worst: see the
report of this change; Adam's first steps move each weight by about lr, so 5e-5 is 1.7 % of one
update).
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


def train(spec, mesh, devices):
  """Losses of STEPS training steps and the final state, on `devices` arranged as `mesh`."""
  cfg = load_config(spec)
  cfg.mesh.update(mesh)
  trainer = loop.Trainer(cfg, devices=devices)
  state, losses = trainer.init_state(), []
  for step in range(STEPS):
    objective = curriculum.stage_at(trainer.stages, step).objective
    state, metrics = trainer.train_step(objective)(state, trainer.next_batch())
    losses.append(float(metrics["loss"]))
  return losses, state, trainer


@pytest.mark.parametrize("spec", MODELS)
def test_sharded_training_equals_one_device(spec, data_cache):
  losses, state, _ = train(spec, dict(data=1, fsdp=1, tensor=1), jax.devices()[:1])
  params = jax.device_get(state.params)
  for name, mesh in MESHES.items():
    sharded_losses, sharded, trainer = train(spec, mesh, jax.devices())
    np.testing.assert_allclose(sharded_losses, losses, rtol=2e-5, err_msg=name)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=5e-5, err_msg=name),
                 jax.device_get(sharded.params), params)
    if name == "fsdp=8":  # the arrays the step returned, not only the planned shardings
      actual = jax.tree.map(lambda x: x.sharding, sharded.params)
      assert memory_report.replicated_large(sharded.params, actual, trainer.mesh, min_size=1024) == []


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
                             jax.make_mesh((1, 8, 1), sharding.MESH_AXES)) == P(None, None, None, None, "fsdp")


def test_the_run_prints_its_memory_per_device(data_cache, capsys):
  cfg = load_config("clm.py:tiny")
  cfg.mesh.update(data=1, fsdp=8, tensor=1)
  _, state, trainer = train("clm.py:tiny", cfg.mesh, jax.devices())
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
