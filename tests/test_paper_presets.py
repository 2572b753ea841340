"""The paper-scale presets against the reference's drivers (issue 19 §1). Every expected number is
written out from the spec (../shared/spec/reference-code.md, paper.md), not read from memjax's code,
so that a preset drifting from the reference fails here."""

import json
import pathlib

import pytest

from memjax import config as mc
from memjax import reproduce

CONFIGS = pathlib.Path(__file__).parent.parent / "configs"
ROOT = pathlib.Path("/planned")


@pytest.fixture(scope="module")
def paper():
  """Every paper-scale run of the suite, by name (planned, nothing built)."""
  return {spec.name: spec.cfg for name in reproduce.EXPERIMENTS
          for spec in reproduce.experiment(name).plan("paper", ROOT)}


def tower(section):
  return (section.d_model, section.n_layers, section.n_heads if section.family == "transformer" else
          section.mixer_kernel)


def test_probed_causal_lms_and_where_they_are_read(paper):
  # clm_transformer_information.py: LlamaForCausalLM d 512, 8 layers, 4 heads, read at x[:, -1];
  # clm_mixer_information.py: LanguageMixer d 1024, 8 layers, kernel 1, clm_encoder=True (x[:, -2]).
  assert tower(paper["transformer_clm"].model) == (512, 8, 4)
  assert tower(paper["mixer_clm"].model) == (1024, 8, 1)
  assert paper["transformer_probe_causal_lm"].encoder.embed_index == -1
  assert paper["mixer_probe_causal_lm"].encoder.embed_index == -2
  for family, expected in (("transformer", (512, 8, 4)), ("mixer", (1024, 8, 1))):
    assert tower(paper[f"{family}_probe_causal_lm"].encoder) == expected


def test_memory_model_encoders_are_half_the_decoder(paper):
  # paper §2.4 / §5.5: encoders d_m/2 of the decoder; transformers 256 -> 512, mixers 512 -> 1024.
  assert (paper["transformer_memory_clm"].encoder.d_model, paper["transformer_memory_clm"].decoder.d_model) == (256, 512)
  assert (paper["mixer_memory_clm"].encoder.d_model, paper["mixer_memory_clm"].decoder.d_model) == (512, 1024)


def test_copy_runs_are_the_reference_copy_drivers(paper):
  # memory_mixer_copy.py: 512 / 512 / 16, frozen k4 16-layer autoencoder encoder, decoder k1, 16 x 4
  # sequences; memory_transformer_copy.py: 512 / 512 / 16 / 4, total 64; both 100k steps.
  frozen = paper["mixer_copy_frozen_ae"]
  assert tower(frozen.encoder) == (512, 16, 4) and frozen.encoder.frozen
  assert tower(frozen.decoder) == (512, 16, 1)
  assert tower(paper["mixer_copy_trainable"].encoder) == (512, 16, 4)
  assert tower(paper["transformer_copy_trainable"].encoder) == tower(paper["transformer_copy_trainable"].decoder) == (512, 16, 4)
  for spec in reproduce.experiment("copy").plan("paper", ROOT):  # §5.7's runs (§5.8's train 30k steps)
    cfg = spec.cfg
    if cfg.task == "memory":
      assert (cfg.train.batch_size, cfg.train.steps, cfg.data.n_ctx) == (64, 100_000, 1024), spec.name


def test_frozen_mixer_reads_the_reference_autoencoder(paper):
  # frozen_mixer_trainer.py: VariableMemoryMixer + frozen k16 8-layer autoencoder encoder, enc 512,
  # dec 1024, 16 layers. (Batch: the memory models', docs/differences.md.)
  cfg = paper["mixer_memory_frozen_ae"]
  assert tower(cfg.encoder) == (512, 8, 16) and cfg.encoder.frozen
  assert tower(cfg.decoder) == (1024, 16, 1)


def test_oracle_against_a_size_matched_decoder_only_model(paper):
  # §5.4: capacity 1024 * 8 / (512 * 3.92) = 4.08 BPB: a d=1024 mixer encoder over 512 tokens.
  oracle = paper["mixer_oracle"]
  assert (oracle.encoder.d_model, oracle.data.n_ctx) == (1024, 512)
  assert oracle.encoder.d_model * 8 / (oracle.data.n_ctx * 3.92) == pytest.approx(4.08, abs=0.005)
  for family in ("mixer", "transformer"):
    decoder_only, decoder = paper[f"{family}_oracle_decoder_only"].model, paper[f"{family}_oracle"].decoder
    assert tower(decoder_only) == tower(decoder)
  assert tower(paper["mixer_oracle_decoder_only"].model) == (1024, 16, 1)
  assert tower(paper["transformer_oracle_decoder_only"].model) == (512, 16, 4)


def test_combined_is_the_curriculum_last_stage(paper):
  # reference-code.md §3.3: autoencoder -> blank copy -> copy -> combined, each stage loading the
  # previous one; memory_transformer_combined.py: blank copy, frozen autoencoder encoder,
  # 512 / 512 / 16 / 4, total batch 64, 100k steps, lr 2e-4.
  chain = ["blank_copy_frozen_ae", "curriculum_frozen_ae", "curriculum_combined_frozen_ae"]
  for family in ("mixer", "transformer"):
    stages = [paper[f"{family}_{name}"] for name in chain]
    assert [s.objective.stages for s in stages] == ["blank_copy", "copy", "combined"]
    assert [s.train.init_from.rsplit("/", 1)[-1] for s in stages] == [
        "", f"{family}_blank_copy_frozen_ae", f"{family}_curriculum_frozen_ae"]
    combined = stages[-1]
    assert combined.encoder.frozen and combined.encoder.checkpoint == stages[0].encoder.checkpoint
    assert (combined.objective.combined_copy, combined.train.batch_size, combined.train.steps) == (
        "blank_copy", 64, 100_000)
  assert paper["transformer_curriculum_combined_frozen_ae"].train.lr == 2e-4
  assert tower(paper["transformer_curriculum_combined_frozen_ae"].decoder) == (512, 16, 4)


def test_llm_probe_is_the_reference_llm_driver(tmp_path):
  # llm_information.py: decoder Llama 512 / 16 / 4 unrolled, lr 2e-4, warmup 100, 40k steps,
  # 32768 tokens per batch (32768 / n_ctx sequences).
  from memjax.experiments import llm_probe

  converted = tmp_path / "llm"
  converted.mkdir()
  (converted / "config.json").write_text(json.dumps({
      "task": "clm", "data": {"vocab_size": 128256},
      "model": {"family": "transformer", "d_model": 2048, "n_layers": 16, "n_heads": 32, "n_kv_heads": 8}}))
  cfg = mc.load(CONFIGS / "probe.py", f"paper,pretrained={converted}")
  assert (cfg.decoder.family, cfg.decoder.feed, tower(cfg.decoder)) == ("transformer", "unroll", (512, 16, 4))
  assert (cfg.train.lr, cfg.train.warmup_steps, cfg.train.steps) == (2e-4, 100, 40_000)
  assert cfg.train.batch_size * cfg.data.n_ctx == 32_768
  assert llm_probe.run_config(cfg, 16, -1, 8).train.batch_size == 32_768 // 16
  assert llm_probe.run_config(cfg, 512, -1, 8).train.batch_size == 32_768 // 512
