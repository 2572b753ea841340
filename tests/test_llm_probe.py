"""The LLM probe experiment (paper §5.2; memjax.reproduce llm_probe): tiny scale end to end on random
BERT- and Llama-style models converted locally, and its paper-scale plan from the published configs."""

import json

from memjax.experiments import llm_probe, suite


def test_tiny_llm_probe_converts_random_models_and_probes_each_length(tmp_path, data_cache):
  summary = suite.run_experiment(llm_probe.EXPERIMENT, "tiny", tmp_path, progress=False)
  rows = summary["rows"]
  assert [(r["key"], r["n_ctx"]) for r in rows] == [("bert", 16), ("bert", 32), ("llama", 16), ("llama", 32)]
  assert all(0.0 <= r["token_accuracy"] <= 1.0 and r["cross_entropy"] > 0 for r in rows)
  assert "randomly initialized" in summary["table"] and not summary["verdicts"]  # random: no finding
  assert all(0.0 < r["unigram_floor"]["token_accuracy"] < 1.0 for r in rows)
  bert = json.loads((tmp_path / "pretrained" / "random-bert" / "config.json").read_text())["model"]
  assert bert["family"] == "bert" and bert["max_positions"] == 32
  probe = json.loads((tmp_path / "runs" / "llm_probe_bert_c16" / "config.json").read_text())
  # The whole converted encoder frozen, the preset's tokens per batch held (8 x 32 = 16 x 16).
  assert probe["encoder"]["frozen_scope"] == "all" and probe["train"]["batch_size"] == 16
  assert probe["data"]["tokenizer"].endswith("random-bert/tokenizer.json")


def test_paper_plan_is_built_from_the_published_configs_without_weights(tmp_path):
  specs = {s.name: s.cfg for s in llm_probe.plan("paper", tmp_path)}
  assert sorted(specs) == sorted(f"llm_probe_{m}_c{n}" for m in ("bert", "llama") for n in (16, 64, 256, 512))
  bert, llama = specs["llm_probe_bert_c512"], specs["llm_probe_llama_c64"]
  # BERT-large: d 1024, 24 layers, 16 heads, 4096 MLP, 512 positions, 30522 tokens (config.json).
  assert (bert.encoder.family, bert.encoder.d_model, bert.encoder.n_layers, bert.encoder.n_heads,
          bert.encoder.mlp_dim, bert.encoder.max_positions, bert.data.vocab_size) == (
              "bert", 1024, 24, 16, 4096, 512, 30522)
  # Llama 3.2 1B: d 2048, 16 layers, 32 query / 8 key-value heads, llama3 RoPE, 128256 tokens.
  assert (llama.encoder.d_model, llama.encoder.n_layers, llama.encoder.n_kv_heads, llama.encoder.rope_type,
          llama.data.vocab_size) == (2048, 16, 8, "llama3", 128256)
  for name, cfg in specs.items():  # the reference's LLM driver: decoder 512/16/4, 32768 tokens per batch
    assert (cfg.decoder.d_model, cfg.decoder.n_layers, cfg.decoder.n_heads, cfg.decoder.feed) == (512, 16, 4, "unroll")
    assert (cfg.train.lr, cfg.train.warmup_steps) == (2e-4, 100)
    assert cfg.train.batch_size * cfg.data.n_ctx == 32768, name
  assert (bert.train.steps, llama.train.steps) == (200_000, 40_000)


def test_findings_compare_the_shortest_and_longest_context_of_each_pretrained_model():
  rows = [dict(model="BERT-large", n_ctx=n, token_accuracy=a) for n, a in ((64, 0.1), (16, 0.4), (512, 0.06))]
  rows += [dict(model="random BERT-style", n_ctx=n, token_accuracy=0.07) for n in (16, 64)]
  (found,) = llm_probe.findings({"rows": rows})
  assert (found["ours"], found["than"], found["paper"]) == (0.4, 0.06, "more")
  assert found["finding"] == "BERT-large probe token acc.: n_ctx 16 vs 512"
