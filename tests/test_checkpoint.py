import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.training import checkpoint

STATE = {"params": {"encoder": {"w": jnp.arange(6.0).reshape(2, 3)}, "head": {"k": jnp.ones(4)}},
         "step": jnp.int32(7)}


def target(tree):
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return checkpoint.abstract(tree, jax.tree.map(lambda _: sharding, tree))


@pytest.fixture
def saved(tmp_path):
  mngr = checkpoint.manager(tmp_path, items=(checkpoint.STATE,), async_save=False)
  checkpoint.save(mngr, 7, STATE, force=True)
  return mngr


def test_round_trip_and_partial_restore(saved):
  restored = checkpoint.restore(saved, 7, target(STATE))
  jax.tree.map(np.testing.assert_array_equal, restored, STATE)
  encoder_only = checkpoint.restore(saved, 7, target({"params": {"encoder": STATE["params"]["encoder"]}}))
  assert set(encoder_only) == {"params"} and set(encoder_only["params"]) == {"encoder"}
  # The values too, not only the keys: the encoder's leaves come back as saved (not zeros, not the
  # head's), bit for bit.
  np.testing.assert_array_equal(encoder_only["params"]["encoder"]["w"], STATE["params"]["encoder"]["w"])


def test_shape_mismatch_lists_every_difference(saved):
  wrong = {"params": {"encoder": {"w": jnp.zeros((3, 3))}, "head": {"k": jnp.ones(4)}, "new": {"b": jnp.ones(1)}},
           "step": jnp.int32(0)}
  with pytest.raises(checkpoint.CheckpointError) as error:
    checkpoint.restore(saved, 7, target(wrong))
  assert "params/encoder/w: stored (2, 3), expected (3, 3)" in str(error.value)
  assert "params/new/b: missing" in str(error.value)


def test_corrupt_checkpoint_is_named_and_kept(saved, tmp_path):
  for path in (tmp_path / "7" / "state").rglob("*"):
    if path.is_file():
      path.write_bytes(b"garbage")
  with pytest.raises(checkpoint.CheckpointError, match="step 7 .* cannot be"):
    checkpoint.restore(saved, 7, target(STATE))
  assert (tmp_path / "7" / "state").exists()
