import pathlib

import pytest
from flax import nnx

from memjax import config as mc
from memjax import models
from memjax.objectives import curriculum

CONFIGS = pathlib.Path(__file__).parent.parent / "configs"
RUN_CONFIGS = ["clm.py", "autoencoder.py", "probe.py", "memory.py"]


@pytest.mark.parametrize("name", RUN_CONFIGS)
@pytest.mark.parametrize("preset", mc.PRESETS)
@pytest.mark.parametrize("family", ["transformer", "mixer"])
def test_every_preset_builds_a_model(name, preset, family):
  cfg = mc.load(CONFIGS / name, f"{preset},family={family}")
  model = nnx.eval_shape(lambda: models.build_model(cfg, nnx.Rngs(0)))
  assert model is not None
  if preset == "paper":
    assert cfg.data.vocab_size == 8000 and cfg.train.lr == mc.PAPER_LEARNING_RATES[family]


# The tiny memory preset: 4 chunks of 32 tokens (n_ctx 128). Decoder positions per kind, by hand:
# parallel / none: one chunk + 3 memory slots; full: the whole context; recurrent: a chunk + the
# carried memory; oracle: the whole context + its one memory.
MEMORY_KINDS = {"parallel": ("MemoryModel", 32 + 3), "none": ("MemoryModel", 32 + 3),
                "full": ("CausalLM", 128), "recurrent": ("RecurrentMemoryModel", 32 + 1),
                "oracle": ("OracleMemoryModel", 128 + 1)}


@pytest.mark.parametrize("kind", list(MEMORY_KINDS))
def test_every_memory_kind_builds(kind):
  """The inline curriculum survives the comma-separated argument as two stages, and each kind
  builds its own model (not one model for every kind)."""
  cfg = mc.load(CONFIGS / "memory.py", f"tiny,kind={kind},stages=blank_copy:5,combined")
  assert cfg.objective.stages == "blank_copy:5,combined"
  assert curriculum.parse(cfg.objective.stages, cfg.train.steps) == (
      curriculum.Stage("blank_copy", 0, 5), curriculum.Stage("combined", 5, 20))
  model = nnx.eval_shape(lambda: models.build_model(cfg, nnx.Rngs(0)))
  model_class, decoder_positions = MEMORY_KINDS[kind]
  assert type(model).__name__ == model_class
  assert models.model_spec(cfg).decoder.length == decoder_positions
  if model_class == "MemoryModel":  # the no-memory control has no encoder to train
    assert (model.encoder is None) == (kind == "none")


def test_arguments_are_parsed_and_checked():
  arg = mc.parse_arg("tiny,family=mixer,steps=5", family="transformer", steps=1)
  assert (arg.preset, arg.family, arg.steps) == ("tiny", "mixer", 5)
  with pytest.raises(ValueError, match="unknown config argument 'famly'"):
    mc.parse_arg("tiny,famly=mixer", family="transformer")
  with pytest.raises(ValueError, match="unknown preset"):
    mc.parse_arg("huge")
  with pytest.raises(FileNotFoundError):
    mc.load(CONFIGS / "nope.py")


def test_the_bench_preset_is_the_issue_shape():
  cfg = mc.load(CONFIGS / "clm.py", "bench")
  assert (cfg.model.d_model, cfg.model.n_layers, cfg.model.n_heads, cfg.data.n_ctx, cfg.data.vocab_size,
          cfg.train.batch_size, cfg.train.compute_dtype) == (256, 4, 4, 256, 8000, 8, "float32")
  assert models.encoder_config(cfg).hidden_dim == 1024


def test_headline_config_probes_the_same_family_and_size():
  from memjax.experiments import headline

  runs = {spec.name: spec.cfg for spec in headline.EXPERIMENT.plan("demo", pathlib.Path("/planned"))}
  clm, autoencoder = runs["mixer_clm"], runs["mixer_autoencoder"]
  for probe in (runs[f"mixer_probe_{key}"] for key in ("untrained", "causal_lm", "autoencoder")):
    for section in ("d_model", "n_layers", "family"):
      assert clm.model[section] == autoencoder.encoder[section] == probe.encoder[section]
    assert clm.data.n_ctx == autoencoder.data.n_ctx == probe.data.n_ctx
