import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from memjax.training import sharding


def mesh(**sizes):
  return sharding.make_mesh(ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1) | sizes))


def test_mesh_sizes_fill_the_devices():
  assert jax.device_count() == 8
  assert dict(mesh().shape) == {"data": 8, "fsdp": 1, "tensor": 1}
  assert dict(mesh(fsdp=2, tensor=2).shape) == {"data": 2, "fsdp": 2, "tensor": 2}
  with pytest.raises(ValueError, match="needs 6 devices"):
    mesh(data=3, fsdp=2)
  with pytest.raises(ValueError, match="at most one -1"):
    mesh(fsdp=-1)


def test_parameter_rules_shard_trailing_dims_and_skip_indivisible_axes():
  m = mesh(data=2, fsdp=2, tensor=2)
  assert sharding.param_spec("encoder/stack/blocks/attn/q/kernel", (4, 32, 32), m) == P(None, "fsdp", "tensor")
  assert sharding.param_spec("head/kernel", (32, 7), m) == P("fsdp", None)  # 7 is not divisible by 2
  assert sharding.param_spec("encoder/stack/norm/scale", (32,), m) == P()


def test_tree_shardings_follow_paths_and_batches_split_over_data_and_fsdp():
  m = mesh(fsdp=4, tensor=2)
  tree = {"opt": {"mu": {"embed": {"embedding": np.zeros((16, 8))}}}, "step": np.zeros(())}
  shardings = sharding.tree_shardings(tree, m)
  assert shardings["opt"]["mu"]["embed"]["embedding"].spec == P("tensor", "fsdp")
  assert shardings["step"].spec == P()
  batch = sharding.global_batch({"tokens": np.zeros((8, 4), np.int32)}, m)
  assert batch["tokens"].sharding.spec == P(("data", "fsdp"))
