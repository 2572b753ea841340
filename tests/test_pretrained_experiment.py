"""The pretrained-decoder experiment (§5.8) and the 4 x 512 memory models (§5.5): their plans at cpu and
paper scale (the Llama 3.2 1B decoder sized without weights). Their tiny-scale runs are tested with
every experiment's in tests/test_reproduce.py."""

import copy

import pytest

from memjax.experiments import memory_long, pretrained, runs, suite


def test_paper_decoder_is_llama_3_2_1b_sized_without_weights(tmp_path):
  """The dry run builds the Llama 3.2 1B decoder from its config alone: its parameter count is
  transformers' LlamaForCausalLM of the published config (built on the meta device, no weights)."""
  import torch
  import transformers

  from memjax.experiments import dryrun
  from memjax.models import hf_llama

  with torch.device("meta"):  # (a copy: transformers writes rope_theta into the rope_scaling it is given)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**copy.deepcopy(hf_llama.LLAMA_3_2_1B)))
  hf_params = sum(p.numel() for p in hf.parameters())
  specs = {spec.name: spec for spec in pretrained.plan("paper", tmp_path)}
  decoder = specs["transformer_pretrained_copy"].cfg.decoder
  # the published config.json's values (meta-llama/Llama-3.2-1B), by hand
  assert (decoder.d_model, decoder.n_layers, decoder.n_heads, decoder.n_kv_heads, decoder.mlp_dim,
          decoder.rope_theta, decoder.tie_embeddings) == (2048, 16, 32, 8, 8192, 500000.0, True)
  assert specs["transformer_pretrained_copy"].cfg.data.vocab_size == 128256
  assert decoder.checkpoint == str(tmp_path / pretrained.CONVERTED)
  for spec in specs.values():
    assert spec.cfg.train.lr == 5e-6 and spec.cfg.objective.stages == "copy"
    assert (spec.cfg.encoder.d_model, spec.cfg.encoder.n_layers, spec.cfg.encoder.n_heads) == (512, 16, 4)
  report = dryrun.dry_run([pretrained.EXPERIMENT], devices=8, lower=False)
  by_run = {r["run"]: r for r in report["rows"]}
  assert by_run["transformer_pretrained_copy_no_memory"]["params"] == hf_params  # 1,235,814,400
  assert by_run["transformer_scratch_copy"]["params"] == by_run["transformer_pretrained_copy"]["params"] > hf_params


def test_memory_long_runs_are_the_memory_runs_at_twice_the_chunk():
  for scale in ("cpu", "paper"):
    for family in suite.FAMILIES:
      for kind in ("parallel", "none", "full"):
        base, long = runs.memory(scale, family, kind), memory_long.run(scale, family, kind)
        assert long.cfg.memory.chunks == base.cfg.memory.chunks == 4
        assert long.cfg.data.n_ctx == 2 * base.cfg.data.n_ctx == {"cpu": 128, "paper": 2048}[scale]
        assert long.name == f"{base.name}_c{long.cfg.data.n_ctx}"


def test_paper_runs_split_llama_over_devices_and_compile_apart_from_data_parallel(tmp_path):
  """Llama 3.2 1B's parameters and AdamW state (15.3 GiB replicated) only fit a 16 GiB v5e chip split
  over the devices; the TPU table's journal must then not reuse a data-parallel compile for them."""
  from memjax.experiments import dryrun

  spec = {s.name: s for s in pretrained.plan("paper", tmp_path)}["transformer_pretrained_copy"]
  assert (spec.cfg.mesh.data, spec.cfg.mesh.fsdp) == (1, -1)
  data_parallel = spec.cfg.copy_and_resolve_references()
  data_parallel.mesh.update(data=-1, fsdp=1)
  accumulated = spec.cfg.copy_and_resolve_references()
  accumulated.train.microbatches = 4
  signatures = {dryrun._signature(c, "copy") for c in (spec.cfg, data_parallel, accumulated)}
  assert len(signatures) == 3
