"""The public Python API (memjax.api): user objectives trained from Python and by import path."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from memjax import api as mj
from memjax.objectives import curriculum, lookup
from memjax.training import program
from memjax.training.writers import read_metrics

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import user_objectives  # noqa: E402  (a user's module, outside memjax)

from test_loop import assert_same_params, final_state  # noqa: E402

ROOT = pathlib.Path(__file__).parent.parent
SPECIAL = mj.SpecialIds(pad=0, eos=1, blank=2, sep=3)


def test_schedule_weights_change_the_total_as_specified():
  one = lambda outputs, batch: (jnp.float32(2.0), {"loss": jnp.float32(2.0)})
  ramp = optax.linear_schedule(0.0, 1.0, 10)
  loss = jax.jit(mj.compose({"a": one, "b": mj.Term(one, ramp), "c": mj.Term(one, lambda s: s % 3)}))
  for step, weight_b, weight_c in ((0, 0.0, 0), (5, 0.5, 2), (10, 1.0, 1), (20, 1.0, 2)):
    total, metrics = loss({}, {}, jnp.int32(step))
    assert float(total) == pytest.approx(2.0 * (1.0 + weight_b + weight_c))
    assert float(metrics["b/weight"]) == pytest.approx(weight_b)
  extended = mj.compose({**loss.terms, "d": mj.Term(one, 0.25)})  # a composed loss can be extended
  assert float(extended({}, {}, jnp.int32(0))[0]) == pytest.approx(2.0 * (1.0 + 0 + 0 + 0.25))


def test_user_objective_trains_resumes_and_reports_its_terms(tiny, tmp_path):
  cfg = tiny("clm.py:tiny", steps=8, log_every=1, eval_every=100, checkpoint_every=100)
  cfg.objective.stages = "zclm"
  given = {"zclm": user_objectives.clm_with_z_loss}
  mj.fit(cfg, str(tmp_path / "straight"), objectives=given)
  interrupted = mj.Run(cfg, str(tmp_path / "resumed"), given)
  interrupted.train(until=3)
  interrupted.close()
  results = mj.fit(cfg, str(tmp_path / "resumed"), objectives=given)
  assert_same_params(final_state(tmp_path / "straight"), final_state(tmp_path / "resumed"))
  # Every term's metrics in metrics.jsonl, with the weight the schedule gives (state.step = done - 1).
  records = read_metrics(tmp_path / "straight", "train")
  assert [r["step"] for r in records] == list(range(1, 9))
  for record in records:
    assert record["z/weight"] == pytest.approx(0.05 * (record["step"] - 1), abs=1e-6)
    assert record["loss"] == pytest.approx(record["clm/loss"] + record["z/weight"] * record["z/loss"], rel=1e-5)
  assert record["z/loss"] > 0 and {"clm/accuracy", "clm/tokens", "grad_norm", "lr"} <= set(record)
  # ... and in results.json, with I_e and bits per byte of the token-level term.
  saved = json.loads((tmp_path / "resumed" / "results.json").read_text())
  assert saved["eval"] == pytest.approx(results["eval"])
  assert {"clm/loss", "clm/accuracy", "clm/entropy_proportion", "clm/bits_per_byte", "z/loss",
          "z/weight"} <= set(saved["eval"])
  assert "z/entropy_proportion" not in saved["eval"]  # not a cross-entropy: it reports no tokens
  assert {"train/z/loss", "train/z/weight", "eval/z/loss", "eval/clm/entropy_proportion"} <= tensorboard_tags(
      tmp_path / "straight" / "tensorboard")


def tensorboard_tags(folder):
  """The scalar tags of TensorBoard event files (TFRecords: length, crc, event proto, crc)."""
  from tensorboardX.proto import event_pb2

  tags = set()
  for path in pathlib.Path(folder).rglob("events.out.tfevents.*"):
    data, offset = path.read_bytes(), 0
    while offset < len(data):
      length = int.from_bytes(data[offset:offset + 8], "little")
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      tags |= {value.tag for value in event.summary.value}
      offset += 12 + length + 4
  return tags


def test_a_wrapped_model_call_and_an_objective_value(tiny, tmp_path):
  cfg = tiny("clm.py:tiny", steps=4, log_every=2)
  cfg.objective.stages = "hclm"
  results = mj.fit(cfg, str(tmp_path), objectives=[user_objectives.clm_with_hidden_penalty])
  assert results["eval"]["norm/loss"] > 0 and results["eval"]["norm/weight"] == pytest.approx(1e-3)


def run_cli(workdir, *overrides):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT)]))
  return subprocess.run(
      [sys.executable, "-m", "memjax.train", "--config=configs/clm.py:tiny", f"--workdir={workdir}",
       "--config.train.progress=False", "--config.train.async_checkpoints=False", *overrides],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_the_cli_trains_a_curriculum_of_user_and_builtin_objectives_and_resumes_it(tiny, tmp_path):
  """Stages by import path mixed with a built-in one; a Python run stopped before the boundary is
  resumed by the command line across it, and ends where an uninterrupted run does."""
  stages = "user_objectives:clm_with_z_loss:4,clm"
  overrides = (f"--config.objective.stages={stages}", "--config.train.steps=8",
               "--config.train.eval_every=100", "--config.train.checkpoint_every=100")
  cfg = tiny("clm.py:tiny", steps=8, eval_every=100, checkpoint_every=100)
  cfg.objective.stages = stages
  mj.fit(cfg, str(tmp_path / "straight"))  # the import path resolves in this process too
  first = mj.Run(cfg, str(tmp_path / "resumed"))
  first.train(until=3)
  first.close()
  done = run_cli(tmp_path / "resumed", *overrides)
  assert done.returncode == 0, done.stderr
  assert_same_params(final_state(tmp_path / "straight"), final_state(tmp_path / "resumed"))
  results = json.loads((tmp_path / "resumed" / "results.json").read_text())
  assert {"zclm/z/loss", "zclm/clm/accuracy", "clm/clm/loss", "clm/clm/entropy_proportion"} <= set(results["eval"])
  assert "zclm/z/loss" in done.stdout
  refused = run_cli(tmp_path / "bad", "--config.objective.stages=user_objectives:missing_one")
  assert refused.returncode != 0
  assert refused.stderr.strip().splitlines()[-1] == (
      "memjax.train: error: objective 'user_objectives:missing_one': module 'user_objectives' has "
      "no attribute 'missing_one'")
  assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("spec, match", [
    ("no_such_package.objectives:contrastive", "cannot import module 'no_such_package.objectives'"),
    ("user_objectives:missing_one", "has no attribute 'missing_one'"),
    ("user_objectives:NOT_AN_OBJECTIVE", "is a int, not an Objective"),
    ("user_objectives:returns_a_string", "returned str, not an memjax Objective"),
    ("user_objectives:", "not an import path"),
    ("mlm", "unknown objective 'mlm'"),
])
def test_bad_objective_names_are_refused_naming_them(spec, match, tiny):
  cfg = tiny("clm.py:tiny")
  with pytest.raises(ValueError, match=match) as error:
    lookup.resolve(spec, cfg, special=SPECIAL)
  assert repr(spec.split(":")[0]) in str(error.value) or spec in str(error.value)


def test_config_adds_loss_terms_by_import_path(tiny, tmp_path):
  cfg = tiny("clm.py:tiny", steps=4, log_every=1, eval_every=100, checkpoint_every=100)
  cfg.objective.extra_terms = "user_objectives:z_ramp, user_objectives:text_z_loss:0.25"
  mj.fit(cfg, str(tmp_path / "run"))
  for record in read_metrics(tmp_path / "run", "train"):
    assert record["z_ramp/weight"] == pytest.approx(0.05 * (record["step"] - 1), abs=1e-6)
    assert record["text_z_loss/weight"] == 0.25
    assert record["z_ramp/loss"] == record["text_z_loss/loss"] > 0  # one function, two weights
    assert record["loss"] == pytest.approx(
        record["clm/loss"] + (record["z_ramp/weight"] + 0.25) * record["z_ramp/loss"], rel=1e-5)


@pytest.mark.parametrize("terms, match", [
    ("user_objectives:NOT_AN_OBJECTIVE", "loss term 'user_objectives:NOT_AN_OBJECTIVE' is a int"),
    ("user_objectives:z_ramp:heavy", "weight 'heavy' is not a number"),
    ("user_objectives:nothing_here", "has no attribute 'nothing_here'"),
    ("user_objectives:z_ramp,user_objectives:z_ramp", "two terms called 'z_ramp'"),
])
def test_bad_extra_terms_are_refused_naming_them(terms, match, tiny):
  cfg = tiny("clm.py:tiny")
  cfg.objective.extra_terms = terms
  with pytest.raises(ValueError, match=match):
    lookup.resolve("clm", cfg, special=SPECIAL)


def test_import_paths_in_curricula():
  stages = curriculum.parse("my_project.objectives:contrastive:2000, combined", 3000)
  assert [(s.objective, s.start, s.stop) for s in stages] == [
      ("my_project.objectives:contrastive", 0, 2000), ("combined", 2000, 3000)]
  assert curriculum.parse("pkg.mod:attr", 10)[0].objective == "pkg.mod:attr"
  assert curriculum.parse("clm:4,pkg:attr", 10)[1] == curriculum.Stage("pkg:attr", 4, 10)
  with pytest.raises(ValueError, match="needs a length"):
    curriculum.parse("pkg.mod:attr,clm", 10)


def test_two_objectives_of_one_name_are_refused(tiny):
  cfg = tiny("clm.py:tiny")
  given = {"a": user_objectives.clm_with_z_loss, "b": user_objectives.clm_with_z_loss}
  with pytest.raises(ValueError, match="both named 'zclm'"):
    lookup.resolve_all(["a", "b"], cfg, special=SPECIAL, given=given)
  with pytest.raises(ValueError, match="objectives must be an Objective"):
    program.given_objectives("zclm")


def test_encoder_embedding_is_the_probed_embedding():
  from flax import nnx

  from memjax import models
  from conftest import load_config

  cfg = load_config("autoencoder.py:tiny")
  model = models.build_model(cfg, nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(0), (2, cfg.data.n_ctx), 0, cfg.data.vocab_size)
  np.testing.assert_array_equal(mj.encoder_embedding(model, tokens), model(tokens)["embedding"])
  no_memory = models.build_model(load_config("memory.py:tiny,kind=none"), nnx.Rngs(0))
  with pytest.raises(ValueError, match="has no encoder"):
    mj.encoder_embedding(no_memory, tokens)


def test_stages_restart_like_chained_runs_and_resume_across_the_boundary(tiny, tmp_path):
  cfg = tiny("memory.py:tiny,stages=blank_copy:4,copy", steps=8, log_every=1, eval_every=100,
             checkpoint_every=100, warmup_steps=2)
  cfg.objective.restart_stages = True
  mj.fit(cfg, str(tmp_path / "straight"))
  lr = cfg.train.lr  # each stage: warmup over 2 steps, linear decay to 0 at its own end
  assert [r["lr"] for r in read_metrics(tmp_path / "straight", "train")] == pytest.approx(
      [0.0, lr / 2, lr, lr / 2] * 2)
  state = final_state(tmp_path / "straight")
  counts = [int(np.asarray(leaf)) for path, leaf in jax.tree_util.tree_leaves_with_path(state["opt_state"])
            if "count" in jax.tree_util.keystr(path)]
  assert counts and set(counts) == {4}  # a fresh AdamW state at step 4 (8 without restarts)
  for until in (4,):  # stopped exactly at the boundary (inside a stage: test_loop's curriculum test)
    first = mj.Run(cfg, str(tmp_path / f"resumed{until}"))
    first.train(until=until)
    first.close()
    mj.fit(cfg, str(tmp_path / f"resumed{until}"))
    assert_same_params(state, final_state(tmp_path / f"resumed{until}"))
  short = tiny("memory.py:tiny,stages=blank_copy:2,copy", steps=8, warmup_steps=2)
  short.objective.restart_stages = True
  with pytest.raises(ValueError, match="length of a curriculum stage=2"):
    mj.fit(short, str(tmp_path / "short"))


def test_a_tower_family_by_import_path(tiny, tmp_path, changed_positions):
  from flax import nnx

  from memjax import models

  cfg = tiny("clm.py:tiny", steps=20, log_every=5)
  cfg.model.family = "user_objectives:CausalMeanBlock"
  model = models.build_model(cfg, nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(0), (2, cfg.data.n_ctx), 0, cfg.data.vocab_size)
  assert changed_positions(model, tokens, 5, cfg.data.vocab_size).tolist() == [t >= 5 for t in range(32)]
  results = mj.fit(cfg, str(tmp_path), objectives=None)
  losses = [r["loss"] for r in read_metrics(tmp_path, "train")]
  assert np.isfinite(results["eval"]["clm/loss"]) and losses[-1] < losses[0]
  for family, match in (("user_objectives:nothing", "no attribute 'nothing'"),
                        ("user_objectives:z_loss", "not an nnx.Module class"), ("lstm", "must be one of")):
    cfg.model.family = family
    with pytest.raises(ValueError, match=match):
      models.build_model(cfg, nnx.Rngs(0))
