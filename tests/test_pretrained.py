"""Converted causal LMs in memjax runs: LoRA, a pretrained memory-model decoder, the LLM probe."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from conftest import load_config
from memjax import cli, convert, data as data_lib, models
from memjax.experiments import llm_probe
from memjax.models import lora
from memjax.models.lm import CausalLM
from memjax.models.memory import MemoryModel
from memjax.training import checkpoint, encoders, loop, pretrained, sharding
from memjax.training.state import merge_trees, split_model

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 16}


@pytest.fixture(scope="module")
def converted(tmp_path_factory, data_cache):
  """A random tied Llama (GQA, llama3 RoPE) with the tiny configs' tokenizer, converted to memjax."""
  tokenizer = data_lib.prepare(load_config("clm.py:tiny").data).tokenizer
  root = tmp_path_factory.mktemp("llama")
  torch.manual_seed(0)
  config = transformers.LlamaConfig(
      hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
      num_key_value_heads=2, vocab_size=tokenizer.get_vocab_size(), tie_word_embeddings=True,
      rope_theta=10000.0, rope_scaling=LLAMA3, max_position_embeddings=64)
  model = transformers.LlamaForCausalLM(config).eval()
  with torch.no_grad():
    for p in model.parameters():
      p.normal_(0, 0.2)
  model.save_pretrained(root / "hf")
  (root / "hf" / "tokenizer.json").write_text(tokenizer.to_str())
  cli.call(convert, ["hf-llama", str(root / "hf"), str(root / "memjax")])
  return root / "memjax"


def memory_config(tiny, converted, **args):
  arg = ",".join(f"{k}={v}" for k, v in args.items())
  cfg = tiny(f"memory.py:tiny,decoder={converted}" + (f",{arg}" if arg else ""), steps=3)
  cfg.data.n_ctx = 32  # 4 chunks of 8 tokens
  cfg.train.update(lr=1e-2, warmup_steps=0, eval_every=3, eval_batches=1, checkpoint_every=3)
  return cfg


def test_memory_config_takes_the_converted_architecture(tiny, converted):
  cfg = memory_config(tiny, converted, lora=8)
  assert (cfg.decoder.d_model, cfg.decoder.n_kv_heads, cfg.decoder.rope_type) == (32, 2, "llama3")
  assert cfg.decoder.tie_embeddings and cfg.decoder.lora_alpha == 4.0 and cfg.data.tokenizer.endswith("tokenizer.json")
  assert memory_config(tiny, converted).train.lr == 0.01  # the test's; the config's own:
  assert load_config(f"memory.py:tiny,decoder={converted}").train.lr == 5e-6
  cfg.decoder.d_model = 64
  with pytest.raises(ValueError, match="d_model: checkpoint 32, config 64"):
    pretrained._check_decoder(pretrained.locate(str(converted)), cfg, "x")


def test_zero_initialized_adapters_start_as_the_base_model(tiny, converted):
  adapted = models.build_model(memory_config(tiny, converted, lora=8), nnx.Rngs(0))
  graphdef, _ = split_model(models.build_model(memory_config(tiny, converted), nnx.Rngs(1)))
  base = nnx.merge(graphdef, lora.split_adapters(split_model(adapted)[1])[1])
  tokens = jax.random.randint(jax.random.key(0), (2, 32), 0, 512)
  graphdef, params = nnx.split(adapted)
  forward = jax.jit(lambda p: nnx.merge(graphdef, p)(tokens)["logits"])
  base_logits = jax.jit(lambda: base(tokens)["logits"])()
  # Equal up to float32 rounding: under jit XLA may fuse x W + (x A) 0 differently from x W.
  np.testing.assert_allclose(forward(params), base_logits, rtol=1e-6, atol=1e-6)
  trained = jax.tree_util.tree_map_with_path(  # a trained adapter changes the model
      lambda path, x: jnp.ones_like(x) if "lora_b" in sharding.path_name(path) else x, params)
  assert np.abs(forward(trained) - base_logits).max() > 1e-3


def leaves(tree):
  return {sharding.path_name(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def test_lora_trains_only_adapters_and_encoder_and_merges_into_the_export(tiny, converted, tmp_path):
  cfg = memory_config(tiny, converted, lora=8)
  run = loop.Run(cfg, str(tmp_path / "run"))
  before = {"params": leaves(run.state.params), "frozen": leaves(run.state.frozen)}
  stored = pretrained.read(pretrained.locate(str(converted)))
  # The frozen decoder is the converted model, bit for bit; only adapters, encoder and bridge train.
  for name, value in leaves(stored["decoder"]).items():
    np.testing.assert_array_equal(before["frozen"][f"decoder/{name}"], value)
  assert "head" not in before["frozen"] and "head" not in before["params"]  # tied
  assert all(n.startswith(("encoder/", "bridge/")) or n.endswith(("lora_a", "lora_b")) for n in before["params"])
  assert {n.rsplit("/", 2)[-2] for n in before["params"] if "lora" in n} == {"q", "k", "v", "gate", "up", "down"}
  opt_sizes = sorted(x.size for x in jax.tree.leaves(run.state.opt_state) if x.ndim)
  assert opt_sizes == sorted(2 * [x.size for x in before["params"].values()])  # Adam mu and nu
  run.train()
  run.close()
  after = {"params": leaves(run.state.params), "frozen": leaves(run.state.frozen)}
  for name, value in before["frozen"].items():
    np.testing.assert_array_equal(after["frozen"][name], value)
  changed = [n for n, v in before["params"].items() if not np.array_equal(after["params"][n], v)]
  assert any(n.endswith("lora_b") for n in changed) and any(n.startswith("encoder/") for n in changed)

  # The adapted decoder (adapters applied in the forward pass) vs its merged export in transformers.
  arch = pretrained.locate(str(tmp_path / "run")).arch.replace(lora_rank=8, lora_alpha=4.0)
  decoder = merge_trees(run.state.params, run.state.frozen)["decoder"]
  lm = nnx.merge(nnx.graphdef(nnx.eval_shape(lambda: CausalLM(arch, tie_embeddings=True, rngs=nnx.Rngs(0)))),
                 {"decoder": jax.device_get(decoder)})
  tokens = np.random.RandomState(0).randint(0, 512, (2, 12))
  cli.call(convert, ["to-hf", str(tmp_path / "run"), str(tmp_path / "hf")])
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
  with torch.no_grad():
    expected = reloaded(torch.tensor(tokens)).logits.numpy()
  np.testing.assert_allclose(lm(jnp.asarray(tokens))["logits"], expected, rtol=1e-5, atol=1e-5)


def test_full_fine_tuning_trains_the_loaded_decoder(tiny, converted, tmp_path):
  cfg = memory_config(tiny, converted, encoding="random")
  trainer = loop.Trainer(cfg)
  state = trainer.init_state()
  stored = leaves(pretrained.read(pretrained.locate(str(converted)))["decoder"])
  params = leaves(state.params)
  for name, value in stored.items():
    np.testing.assert_array_equal(params[f"decoder/{name}"], value)
  assert not state.frozen and len(jax.tree.leaves(state.opt_state)) > 2 * len(stored)


def test_random_encoding_memories_carry_nothing_about_the_text(tiny, converted):
  cfg = memory_config(tiny, converted, encoding="random")
  model = models.build_model(cfg, nnx.Rngs(0))
  assert isinstance(model, MemoryModel)
  tokens = jax.random.randint(jax.random.key(0), (2, 32), 0, 512)
  drawn = model.random_tokens(tokens[:, :24], (6, 8))  # drawn from the three encoded chunks
  assert int(drawn.min()) >= 1 and int(drawn.max()) < 512
  np.testing.assert_array_equal(drawn, model.random_tokens(tokens[:, :24], (6, 8)))  # a pure function
  memories = model(tokens)["memories"]
  expected = model.bridge(model.encoder(drawn)[:, -1]).reshape(2, 3, -1)
  np.testing.assert_allclose(memories, expected, rtol=1e-6, atol=1e-6)
  model.encoding = "text"
  assert np.abs(model(tokens)["memories"] - memories).max() > 1e-3


def test_llm_probe_sweeps_n_ctx_on_a_converted_model(tiny, converted, tmp_path):
  cfg = tiny(f"probe.py:tiny,pretrained={converted}", steps=2)
  cfg.train.update(warmup_steps=0, eval_every=2, eval_batches=1, checkpoint_every=2)
  rows = llm_probe.probe(cfg, str(tmp_path / "probe"), [8, 16], tokens_per_batch=128)
  assert [r["n_ctx"] for r in rows] == [8, 16] and all(np.isfinite(r["cross_entropy"]) for r in rows)
  assert (tmp_path / "probe" / "results.md").read_text().count("| 8 |") == 1
  # The probed encoder is the converted model, frozen (its token embedding included).
  assert llm_probe.run_config(cfg, 16, 128, 8).train.batch_size == 8
  stored = leaves(pretrained.read(pretrained.locate(str(converted)))["decoder"])
  mngr = checkpoint.manager(tmp_path / "probe" / "n_ctx_16" / "checkpoints")
  shapes = checkpoint.stored_shapes(mngr, 2)
  target = encoders.unflatten({n: jax.ShapeDtypeStruct(s, np.float32) for n, s in shapes.items()
                               if n.startswith("frozen/encoder/")})
  frozen = leaves(checkpoint.restore(mngr, 2, target)["frozen"]["encoder"])
  mngr.close()
  assert frozen.keys() == stored.keys()
  for name, value in stored.items():
    np.testing.assert_array_equal(frozen[name], value)
