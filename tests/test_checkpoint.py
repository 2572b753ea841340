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


def renamed(tree, old, new):
  """`tree` with every dict key `old` named `new` (optimizer states mirror the parameters)."""
  if isinstance(tree, dict):
    return {new if k == old else k: renamed(v, old, new) for k, v in tree.items()}
  if isinstance(tree, tuple) and hasattr(tree, "_fields"):
    return type(tree)(*(renamed(v, old, new) for v in tree))
  if isinstance(tree, (list, tuple)):
    return type(tree)(renamed(v, old, new) for v in tree)
  return tree


def test_a_causal_lm_saved_before_its_decoder_was_named_restores_as_saved(tiny, tmp_path):
  # Causal LMs kept their decoder under 'encoder' (checkpoint.RENAMED): such a run must resume,
  # serve as a frozen encoder and as a pretrained causal LM, with the values it saved.
  from memjax import models
  from memjax.training import encoders, loop, pretrained, run_folder

  cfg = tiny("clm.py:tiny")
  trainer = loop.Trainer(cfg)
  state = trainer.init_state()
  assert "decoder" in state.params and "encoder" not in state.params
  workdir = tmp_path / "old_clm"
  workdir.mkdir()
  (workdir / run_folder.CONFIG_JSON).write_text(cfg.to_json_best_effort())
  (workdir / run_folder.TOKENIZER_JSON).write_text(trainer.data.tokenizer.to_str())
  mngr = checkpoint.manager(workdir / run_folder.CHECKPOINTS, items=(checkpoint.STATE,), async_save=False)
  checkpoint.save(mngr, 2, renamed(state.to_dict(), "decoder", "encoder"), force=True)
  stored = checkpoint.stored_shapes(mngr, 2)
  assert "params/encoder/embed/embedding" in stored and not [n for n in stored if "decoder" in n]

  resumed = trainer.program.restore(mngr, 2)
  mngr.close()
  assert jax.tree.structure(resumed) == jax.tree.structure(state)
  jax.tree.map(np.testing.assert_array_equal, resumed, state)

  decoder = state.params["decoder"]
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  digest = trainer.data.tokenizer_digest
  frozen = encoders.load(str(workdir), models.encoder_config(cfg), digest,
                         checkpoint.abstract(decoder, jax.tree.map(lambda _: sharding, decoder)))
  jax.tree.map(np.testing.assert_array_equal, frozen, decoder)
  exported = encoders.locate(str(encoders.export(str(workdir), str(tmp_path / "export"))))
  assert exported.group == "encoder"
  jax.tree.map(np.testing.assert_array_equal,
               encoders.load(str(tmp_path / "export"), models.encoder_config(cfg), digest,
                             checkpoint.abstract(decoder, jax.tree.map(lambda _: sharding, decoder))), decoder)
  lm = pretrained.read(pretrained.locate(str(workdir)))
  assert set(lm) == {"decoder", "head"}
  jax.tree.map(np.testing.assert_array_equal, lm, {"decoder": decoder, "head": state.params["head"]})


def test_an_exported_encoder_is_never_read_as_a_decoder(saved):
  # 'encoder' alone is also an exported encoder's layout: read as an encoder, it stays one.
  assert checkpoint.renames(checkpoint.stored_shapes(saved, 7), ["params", "encoder", "w"]) == {}
  assert checkpoint.renames(checkpoint.stored_shapes(saved, 7), ["params", "decoder", "w"]) == {"decoder": "encoder"}
  both = checkpoint.restore(saved, 7, target({"params": {"decoder": STATE["params"]["encoder"]}}))
  np.testing.assert_array_equal(both["params"]["decoder"]["w"], STATE["params"]["encoder"]["w"])
