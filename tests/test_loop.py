import json
import os

import jax
import numpy as np
import pytest

from memjax.training import checkpoint, encoders, loop, run_folder
from memjax.training.writers import read_metrics


def final_state(workdir):
  """The latest checkpoint's state, as saved (numpy arrays)."""
  mngr = checkpoint.manager(workdir / run_folder.CHECKPOINTS, items=(checkpoint.STATE,))
  step = mngr.latest_step()
  restored = mngr.restore(step, args=checkpoint.ocp.args.Composite(state=checkpoint.ocp.args.PyTreeRestore()))
  mngr.close()
  return restored["state"]


def assert_same_params(a, b):
  jax.tree.map(np.testing.assert_array_equal, a["params"], b["params"])


def test_loss_falls_on_real_text(tiny, tmp_path):
  results = loop.run(tiny("clm.py:tiny", steps=40, log_every=5, eval_every=40), str(tmp_path))
  losses = [r["loss"] for r in read_metrics(tmp_path, "train")]
  assert losses[-1] < losses[0] - 0.5
  assert results["eval"]["clm/loss"] < np.log(512) - 0.5  # below a uniform guess
  assert {"config.json", "tokenizer.json", "metrics.jsonl", "results.json", "tensorboard"} <= set(os.listdir(tmp_path))
  assert os.listdir(tmp_path / "tensorboard")


def test_resumed_run_matches_an_uninterrupted_one(tiny, tmp_path):
  cfg = tiny("clm.py:tiny", steps=8, checkpoint_every=100, eval_every=100)
  loop.run(cfg, str(tmp_path / "straight"))
  interrupted = loop.Run(cfg, str(tmp_path / "resumed"))
  interrupted.train(until=3)
  interrupted.close()
  assert checkpoint.manager(tmp_path / "resumed" / "checkpoints").latest_step() == 3
  results = loop.run(cfg, str(tmp_path / "resumed"))
  assert results["step"] == 8
  assert_same_params(final_state(tmp_path / "straight"), final_state(tmp_path / "resumed"))


def test_curriculum_resumes_across_a_stage_boundary(tiny, tmp_path):
  cfg = tiny("memory.py:tiny,stages=blank_copy:4,combined", steps=8, log_every=1, eval_every=100,
             checkpoint_every=100)
  loop.run(cfg, str(tmp_path / "straight"))
  first = loop.Run(cfg, str(tmp_path / "resumed"))
  first.train(until=3)
  first.close()
  results = loop.run(cfg, str(tmp_path / "resumed"))
  stages = [r["stage"] for r in read_metrics(tmp_path / "resumed", "train")]
  assert stages == [0, 0, 0, 0, 1, 1, 1, 1]
  assert {"blank_copy/blank_copy/accuracy", "combined/copy/accuracy", "combined/clm/loss"} <= set(results["eval"])
  assert_same_params(final_state(tmp_path / "straight"), final_state(tmp_path / "resumed"))


def snapshot(directory):
  return {str(p): p.stat().st_mtime_ns for p in directory.rglob("*")}


def test_a_workdir_of_another_config_is_refused_untouched(tiny, trained_autoencoder):
  cfg, workdir = trained_autoencoder
  before = snapshot(workdir)
  other = tiny("autoencoder.py:tiny")
  other.encoder.d_model = 64
  with pytest.raises(ValueError, match="encoder.d_model: workdir has 32, config has 64"):
    loop.run(other, str(workdir))
  assert snapshot(workdir) == before


def test_a_run_resumes_after_memjax_gained_an_option_only_at_its_default(tiny):
  import json

  saved = json.loads(tiny("memory.py:tiny").to_json_best_effort())
  del saved["objective"]["extra_terms"], saved["encoder"]["frozen_scope"]  # a run from before both
  current = tiny("memory.py:tiny")
  assert run_folder.config_differences(saved, json.loads(current.to_json_best_effort())) == []
  assert run_folder.added_at_default(saved, json.loads(current.to_json_best_effort())) == [
      "encoder.frozen_scope", "objective.extra_terms"]
  current.objective.extra_terms = "pkg.losses:z"
  assert run_folder.config_differences(saved, json.loads(current.to_json_best_effort())) == [
      "objective.extra_terms: workdir has None, config has 'pkg.losses:z'"]


def test_a_run_resumes_across_how_it_executes_but_not_what_it_trains(tiny):
  import json

  saved = json.loads(tiny("memory.py:tiny").to_json_best_effort())
  del saved["encoder"]["remat"], saved["train"]["microbatches"]  # a run from before both existed
  current = tiny("memory.py:tiny", microbatches=2, steps=99)
  current.decoder.update(remat="full", scan_layers=True)
  current.mesh.fsdp = 2
  assert run_folder.config_differences(saved, json.loads(current.to_json_best_effort())) == []
  current.decoder.mixer_kernel, current.train.batch_size = 3, 16
  assert run_folder.config_differences(saved, json.loads(current.to_json_best_effort())) == [
      "decoder.mixer_kernel: workdir has 1, config has 3", "train.batch_size: workdir has 8, config has 16"]


def test_checkpoints_without_a_config_are_refused(tiny, tmp_path):
  (tmp_path / "checkpoints" / "5").mkdir(parents=True)
  with pytest.raises(ValueError, match="no config.json"):
    loop.run(tiny("clm.py:tiny"), str(tmp_path))


def test_a_corrupt_checkpoint_is_named_and_not_deleted(tiny, tmp_path):
  cfg = tiny("clm.py:tiny", steps=3, checkpoint_every=1)
  loop.run(cfg, str(tmp_path))
  for path in (tmp_path / "checkpoints" / "3" / "state").rglob("*"):
    if path.is_file():
      path.write_bytes(b"not a checkpoint")
  before = snapshot(tmp_path)
  cfg.train.steps = 4
  with pytest.raises(checkpoint.CheckpointError, match="step 3"):
    loop.run(cfg, str(tmp_path))
  assert snapshot(tmp_path) == before


def test_frozen_encoder_is_bit_identical_and_not_optimized(tiny, trained_autoencoder, tmp_path):
  _, source = trained_autoencoder
  probe = tiny("probe.py:tiny", steps=3)
  probe.encoder.checkpoint = str(source)
  loop.run(probe, str(tmp_path))
  trained = final_state(tmp_path)
  original = final_state(source)
  jax.tree.map(np.testing.assert_array_equal, trained["frozen"]["encoder"], original["params"]["encoder"])
  assert "encoder" not in trained["params"]
  assert "encoder" not in json.dumps(jax.tree_util.tree_map(lambda x: None, trained["opt_state"]))


def test_frozen_blocks_behind_a_fresh_trainable_embedding(tiny, trained_autoencoder, tmp_path):
  """encoder.frozen_scope='blocks' (the reference's probes): the blocks are the checkpoint's and
  never change; the token embedding is freshly initialized, trained and has optimizer state."""
  _, source = trained_autoencoder
  probe = tiny("probe.py:tiny,frozen_scope=blocks", steps=3)
  probe.encoder.checkpoint = str(source)
  loop.run(probe, str(tmp_path / "probe"))
  trained, original = final_state(tmp_path / "probe"), final_state(source)
  jax.tree.map(np.testing.assert_array_equal, trained["frozen"]["encoder"]["stack"],
               original["params"]["encoder"]["stack"])
  assert set(trained["frozen"]["encoder"]) == {"stack"} and set(trained["params"]["encoder"]) == {"embed"}
  fresh = trained["params"]["encoder"]["embed"]["embedding"]
  assert not np.allclose(fresh, original["params"]["encoder"]["embed"]["embedding"], atol=1e-2)
  opt_paths = [checkpoint.path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(trained["opt_state"])]
  assert any("encoder/embed" in p for p in opt_paths) and not any("encoder/stack" in p for p in opt_paths)
  # A run with frozen blocks is itself a source: its export holds its own embedding and the blocks.
  exported = encoders.export(str(tmp_path / "probe"), str(tmp_path / "export"))
  probe_all = tiny("probe.py:tiny", steps=3)
  probe_all.encoder.checkpoint = str(exported)
  loop.run(probe_all, str(tmp_path / "probe_of_export"))
  again = final_state(tmp_path / "probe_of_export")["frozen"]["encoder"]
  np.testing.assert_array_equal(again["embed"]["embedding"], fresh)
  jax.tree.map(np.testing.assert_array_equal, again["stack"], original["params"]["encoder"]["stack"])
  with pytest.raises(ValueError, match="frozen_scope must be one of"):
    loop.run(tiny("probe.py:tiny,frozen_scope=some"), str(tmp_path / "bad"))


def test_memory_model_curriculum_on_a_frozen_autoencoder_encoder(tiny, tmp_path):
  """The paper's procedure: autoencoder on chunk-length contexts, then a memory-model decoder on its
  frozen encoder, blank copy then copy."""
  autoencoder = tiny("autoencoder.py:tiny,family=mixer", steps=3)
  autoencoder.data.n_ctx = 8
  loop.run(autoencoder, str(tmp_path / "autoencoder"))
  memory = tiny("memory.py:tiny,family=mixer,stages=blank_copy:2,copy", steps=4)
  memory.data.n_ctx = 32  # 4 chunks of the autoencoder's 8 tokens
  memory.encoder.update(checkpoint=str(tmp_path / "autoencoder"), frozen=True)
  results = loop.run(memory, str(tmp_path / "memory"))
  assert {"blank_copy/blank_copy/accuracy", "copy/copy/accuracy"} <= set(results["eval"])
  jax.tree.map(np.testing.assert_array_equal, final_state(tmp_path / "memory")["frozen"]["encoder"],
               final_state(tmp_path / "autoencoder")["params"]["encoder"])
  mismatched = tiny("memory.py:tiny,family=mixer")  # chunks of 32 tokens: the mixer maps do not fit
  mismatched.encoder.update(checkpoint=str(tmp_path / "autoencoder"), frozen=True)
  with pytest.raises(ValueError, match="length: checkpoint 8, config 32"):
    loop.run(mismatched, str(tmp_path / "mismatched"))
