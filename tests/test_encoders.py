import json

import jax
import numpy as np
import pytest
from flax import nnx

from memjax import models
from memjax.training import checkpoint, encoders
from memjax.training.state import split_model


def test_export_then_load_gives_the_trained_encoder(trained_autoencoder, tmp_path):
  cfg, workdir = trained_autoencoder
  out = encoders.export(str(workdir), str(tmp_path / "export"))
  meta = json.loads((out / encoders.ENCODER_JSON).read_text())
  assert meta["architecture"]["d_model"] == cfg.encoder.d_model and (out / "tokenizer.json").exists()
  source, exported = encoders.locate(str(workdir)), encoders.locate(str(out))
  assert source.step == exported.step == cfg.train.steps and source.tokenizer_digest == exported.tokenizer_digest

  def read(location):
    mngr = checkpoint.manager(location.checkpoints, items=(checkpoint.STATE,))
    shapes = checkpoint.stored_shapes(mngr, location.step)
    mngr.close()
    return shapes

  assert {k: v for k, v in read(source).items() if k.startswith("params/encoder/")} == read(exported)
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  _, params = split_model(nnx.eval_shape(lambda: models.build_model(cfg, nnx.Rngs(0))))
  target = checkpoint.abstract(params["encoder"], jax.tree.map(lambda _: sharding, params["encoder"]))
  loaded = encoders.load(str(out), models.encoder_config(cfg), source.tokenizer_digest, target)
  from_run = encoders.load(str(workdir), models.encoder_config(cfg), source.tokenizer_digest, target)
  jax.tree.map(np.testing.assert_array_equal, loaded, from_run)
  assert float(np.abs(loaded["embed"]["embedding"]).sum()) > 0


def test_architecture_and_tokenizer_mismatches_are_explained(trained_autoencoder):
  cfg, workdir = trained_autoencoder
  wider = models.encoder_config(cfg).replace(d_model=2 * cfg.encoder.d_model)
  with pytest.raises(ValueError, match="d_model: checkpoint 32, config 64"):
    encoders.load(str(workdir), wider, encoders.locate(str(workdir)).tokenizer_digest, {})
  with pytest.raises(ValueError, match="different tokenizer"):
    encoders.load(str(workdir), models.encoder_config(cfg), "0123456789abcdef", {})


def test_bad_locations(tmp_path, trained_autoencoder):
  with pytest.raises(FileNotFoundError, match="neither an exported encoder"):
    encoders.locate(str(tmp_path))
  (tmp_path / "x").mkdir()
  (tmp_path / "x" / "f").write_text("")
  with pytest.raises(FileExistsError, match="not empty"):
    encoders.export(str(trained_autoencoder[1]), str(tmp_path / "x"))
