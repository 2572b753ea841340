"""Config values out of range are refused before a run writes anything, naming each key."""

import pytest

from conftest import load_config
from memjax.training import loop, validation


@pytest.mark.parametrize("key, value, message", [
    ("train.lr", -1e-3, "train.lr=-0.001 must be > 0"),  # trained to a loss of 2668 before
    ("train.lr", 0.0, "train.lr=0.0 must be > 0"),
    ("train.lr", float("nan"), "train.lr=nan must be > 0 and finite"),
    ("train.steps", 0, "train.steps=0 must be > 0"),
    ("train.batch_size", -8, "train.batch_size=-8 must be > 0"),
    ("train.eval_batches", 0, "train.eval_batches=0 must be > 0"),
    ("train.log_every", 0, "train.log_every=0 must be > 0"),
    ("train.eval_every", -1, "train.eval_every=-1 must be > 0"),
    ("train.checkpoint_every", 0, "train.checkpoint_every=0 must be > 0"),
    ("train.keep_checkpoints", 0, "train.keep_checkpoints=0 must be > 0"),
    ("train.warmup_steps", -1, "train.warmup_steps=-1 must be >= 0"),
    ("train.b2", 1.0, "train.b2=1.0 must be in [0, 1)"),
    ("train.eps", 0.0, "train.eps=0.0 must be > 0"),
    ("train.weight_decay", -0.1, "train.weight_decay=-0.1 must be >= 0"),
    ("train.clip_norm", -1.0, "train.clip_norm=-1.0 must be >= 0"),
    ("data.n_ctx", 0, "data.n_ctx=0 must be > 0"),
    ("data.eval_documents", 0, "data.eval_documents=0 must be > 0"),
    ("objective.copy_weight", -1.0, "objective.copy_weight=-1.0 must be >= 0"),
    ("seed", -1, "seed=-1 must be >= 0"),
])
def test_a_value_out_of_range_is_refused_before_anything_is_written(key, value, message, tmp_path):
  cfg = load_config("clm.py:tiny")
  section, _, name = key.rpartition(".")
  (cfg[section] if section else cfg)[name] = value
  with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
    loop.run(cfg, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_every_problem_is_named_at_once_and_the_presets_pass():
  cfg = load_config("memory.py:tiny")
  cfg.train.update(lr=-1.0, steps=0)
  assert validation.problems(cfg) == ["train.steps=0 must be > 0", "train.lr=-1.0 must be > 0 and finite"]
  for spec in ("clm.py", "autoencoder.py", "memory.py", "probe.py"):
    for preset in ("tiny", "small", "paper"):
      assert validation.problems(load_config(f"{spec}:{preset}")) == [], (spec, preset)
