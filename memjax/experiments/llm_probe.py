"""The LLM information probe (paper §5.2): how much of its input a pretrained LM's embedding holds.

As an experiment of the suite (`python -m memjax.reproduce llm_probe`): at paper scale BERT-large
and Llama 3.2 1B, converted into WORKDIR/pretrained/ first (the dry run builds them from their
published config.json values, PUBLISHED, without weights):

  python -m memjax.convert bert path/to/bert-large-uncased WORKDIR/pretrained/bert-large-uncased
  python -m memjax.convert hf-llama path/to/Llama-3.2-1B WORKDIR/pretrained/llama-3.2-1b

probed at n_ctx 16, 64, 256 and 512; at tiny and cpu scale small BERT-style and Llama-style models,
randomly initialized by transformers and converted locally (`prepare`; the data's own BPE
tokenizer): random encoders, so those tables show that the pipeline runs end to end, not the
paper's numbers. Alone, on any converted model:

  python -m memjax.convert hf-llama path/to/Llama-3.2-1B converted/llama-3.2-1b
  python -m memjax.experiments.llm_probe --config=configs/probe.py:paper,pretrained=converted/llama-3.2-1b \
      --workdir=runs/llm_probe --n_ctx=16,64,256,512

For each context length a fresh decoder is trained to regenerate the input from the frozen model's
last-token, last-layer hidden state (configs/probe.py with `pretrained=DIR`); each length is an
ordinary run in WORKDIR/n_ctx_N (resumable). `--tokens_per_batch` sets the batch to that many tokens
per step; by default the config's (batch size x n_ctx: 32768 at the paper preset, the reference's
32768 / n_ctx sequences at every length). Prints and writes (results.json, results.md) the paper's
table: cross-entropy, entropy proportion I_e and token accuracy on held-out text, per n_ctx.
"""

from __future__ import annotations

import json
import pathlib
import shutil
from typing import Any

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from memjax import cli, runtime
from memjax import config as mc
from memjax.experiments import reporting, suite

FLAGS = flags.FLAGS


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", None, "configs/probe.py:PRESET,pretrained=DIR",
                                  lock_config=True)
  flags.DEFINE_string("workdir", "runs/llm_probe", "Folder for every context length and the results.")
  flags.DEFINE_list("n_ctx", ["16", "64"], "Context lengths to probe.")
  flags.DEFINE_integer("tokens_per_batch", -1, "Tokens per training batch at every n_ctx (-1: the config's, "
                       "its batch size x its n_ctx, as the reference holds 32768 at every length; 0: the "
                       "config's batch size at every n_ctx).")
  flags.mark_flags_as_required(["config"])


def run_config(cfg: ml_collections.ConfigDict, n_ctx: int, tokens_per_batch: int,
               batch_shards: int) -> ml_collections.ConfigDict:
  run = ml_collections.ConfigDict(cfg.to_dict())
  if tokens_per_batch < 0:  # the config's tokens per batch, held at every length
    tokens_per_batch = cfg.train.batch_size * cfg.data.n_ctx
  run.data.n_ctx = n_ctx
  if tokens_per_batch:
    run.train.batch_size = max(batch_shards, tokens_per_batch // n_ctx // batch_shards * batch_shards)
  return run


def table(rows: list[dict[str, Any]]) -> str:
  lines = ["| n_ctx | cross-entropy | I_e | token accuracy | steps |", "|---|---|---|---|---|"]
  lines += [f"| {r['n_ctx']} | {r['cross_entropy']:.3f} | {r['entropy_proportion']:.3f} | "
            f"{100 * r['token_accuracy']:.1f}% | {r['steps']} |" for r in rows]
  return "\n".join(lines)


def probe(cfg: ml_collections.ConfigDict, workdir: str, n_ctxs: list[int],
          tokens_per_batch: int = 0) -> list[dict[str, Any]]:
  """Runs the probe at every n_ctx; returns (and writes) one row per context length."""
  import jax

  from memjax.training import loop, sharding

  if cfg.task != "autoencoder" or not cfg.encoder.checkpoint or not cfg.encoder.frozen:
    raise ValueError("the LLM probe needs configs/probe.py with pretrained=DIR (a frozen encoder)")
  mesh = sharding.make_mesh(cfg.mesh)
  shards = mesh.shape["data"] * mesh.shape["fsdp"]
  root = pathlib.Path(workdir)
  rows = []
  for n_ctx in n_ctxs:
    results = loop.run(run_config(cfg, n_ctx, tokens_per_batch, shards), str(root / f"n_ctx_{n_ctx}"))
    metrics = results["eval"]
    rows.append({"n_ctx": n_ctx, "steps": results["step"],
                 "cross_entropy": metrics["reconstruction/loss"],
                 "entropy_proportion": metrics["reconstruction/entropy_proportion"],
                 "token_accuracy": metrics["reconstruction/accuracy"]})
  if jax.process_index() == 0:
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps({"model": cfg.encoder.checkpoint, "rows": rows}, indent=2))
    (root / "results.md").write_text(f"Information probe of {cfg.encoder.checkpoint}\n\n{table(rows)}\n")
  return rows


# ------------------------------------------------------------------------------ the experiment

# The published config.json values of the paper's models (google-bert/bert-large-uncased,
# unsloth/Llama-3.2-1B = meta-llama/Llama-3.2-1B): the paper-scale plan is built from them, and a
# converted folder must match them (encoders.check_architecture, before anything is restored).
PUBLISHED: dict[str, dict[str, Any]] = {
    "bert-large-uncased": dict(
        architectures=["BertForMaskedLM"], model_type="bert", hidden_act="gelu", hidden_size=1024,
        intermediate_size=4096, layer_norm_eps=1e-12, max_position_embeddings=512, num_attention_heads=16,
        num_hidden_layers=24, position_embedding_type="absolute", type_vocab_size=2, vocab_size=30522),
    "llama-3.2-1b": dict(
        architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu", hidden_size=2048,
        intermediate_size=8192, head_dim=64, max_position_embeddings=131072, num_attention_heads=32,
        num_hidden_layers=16, num_key_value_heads=8, rms_norm_eps=1e-5, rope_theta=500000.0,
        rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                      "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        tie_word_embeddings=True, vocab_size=128256),
}
LENGTHS = {"tiny": (16, 32), "cpu": (16, 64), "paper": (16, 64, 256, 512)}
# The paper's table (§5.2): cross-entropy and token accuracy by model and n_ctx.
PAPER = {("BERT-large", 16): (2.91, 0.402), ("BERT-large", 64): (5.38, 0.116),
         ("BERT-large", 256): (6.16, 0.066), ("BERT-large", 512): (6.47, 0.0596),
         ("Llama 3.2 1B", 64): (6.02, 0.112)}
PAPER_MODEL = {"bert": "BERT-large", "llama": "Llama 3.2 1B"}
# Training steps by model at paper scale: the reference's drivers (llm_information.py 40k,
# bert_information.py up to 200k; reference-code.md §4.3).
PAPER_STEPS = {"bert": 200_000, "llama": mc.LLM_PROBE_STEPS}
CONVERTERS = {"bert": "bert", "llama": "hf-llama"}
PRETRAINED = "pretrained"  # WORKDIR/pretrained/<folder>: the converted models


def models(scale: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
  """key -> (table label, folder under WORKDIR/pretrained, HF config.json): the published models at
  paper scale, small random BERT- and Llama-style ones (the preset's widths) below it."""
  if scale == "paper":
    return {"bert": ("BERT-large", "bert-large-uncased", PUBLISHED["bert-large-uncased"]),
            "llama": ("Llama 3.2 1B", "llama-3.2-1b", PUBLISHED["llama-3.2-1b"])}
  size = mc.SIZES[suite.PRESETS[scale]]
  shape = dict(hidden_size=size["d_model"], intermediate_size=4 * size["d_model"],
               num_hidden_layers=size["n_layers"], num_attention_heads=size["n_heads"],
               vocab_size=size["vocab_size"], max_position_embeddings=max(LENGTHS[scale]))
  return {"bert": ("random BERT-style", "random-bert", dict(shape, model_type="bert", architectures=["BertModel"])),
          "llama": ("random Llama-style", "random-llama",
                    dict(shape, model_type="llama", architectures=["LlamaForCausalLM"],
                         num_key_value_heads=size["n_heads"], tie_word_embeddings=True))}


def architecture(hf_config: dict[str, Any]) -> tuple[dict[str, Any], bool]:
  """(StackConfig fields, tied?) that `memjax.convert` gives the model of `hf_config`."""
  from memjax.models import hf_bert, hf_llama

  if hf_config["model_type"] == "bert":
    return hf_bert.read_config(hf_config).to_dict(), True
  arch, tie = hf_llama.read_config(hf_config)
  return arch.to_dict(), tie


def run_name(key: str, n_ctx: int) -> str:
  return f"llm_probe_{key}_c{n_ctx}"


def plan(scale: str, root: pathlib.Path) -> list[suite.RunSpec]:
  """One probe per model and context length, each holding the tokens per batch of the preset (32768
  at paper scale: the reference's global batch of 32768 / n_ctx sequences)."""
  specs = []
  for key, (_, folder, hf_config) in models(scale).items():
    path = str(pathlib.Path(root).absolute() / PRETRAINED / folder)
    cfg = suite.config("probe.py", scale, PAPER_STEPS[key] if scale == "paper" else None)
    mc.probe_pretrained(cfg, mc.described(*architecture(hf_config), path), path, suite.PRESETS[scale])
    specs += [suite.RunSpec(run_name(key, n), run_config(cfg, n, -1, 1)) for n in LENGTHS[scale]]
  return specs


def prepare(scale: str, root: pathlib.Path) -> None:
  """The converted models `plan` reads: at paper scale checks that they are there; below it creates
  (once) and converts the random BERT- and Llama-style models, with the preset's BPE tokenizer."""
  for key, (label, folder, hf_config) in models(scale).items():
    out = pathlib.Path(root) / PRETRAINED / folder
    if (out / "config.json").exists():
      continue
    if scale == "paper":
      raise FileNotFoundError(f"{out} holds no converted {label}: python -m memjax.convert "
                              f"{CONVERTERS[key]} path/to/{folder} {out}")
    if out.exists():  # a conversion interrupted before its config.json: redo it
      shutil.rmtree(out)
    hf_dir = pathlib.Path(root) / PRETRAINED / "hf" / folder
    _random_hf_model(hf_config, hf_dir, _tokenizer_json(scale, hf_config["vocab_size"]))
    from memjax.training import pretrained

    if key == "bert":
      pretrained.convert_hf_bert(str(hf_dir), str(out))
    else:
      pretrained.convert_hf_llama(str(hf_dir), str(out))


def _tokenizer_json(scale: str, vocab_size: int) -> str:
  """The BPE tokenizer the preset's runs train (and cache) on the same data."""
  from memjax.data import cache_root, sources, tokenizer

  data = suite.config("probe.py", scale).data
  source = sources.resolve(data.source, text_field=data.text_field, split=data.hf_split,
                           streaming=data.hf_streaming)
  tok, _ = tokenizer.get(source, vocab_size, cache_root(data.cache_dir), held_out=data.eval_documents,
                         max_documents=data.max_documents)
  return tok.to_str()


def _random_hf_model(hf_config: dict[str, Any], directory: pathlib.Path, tokenizer_json: str) -> None:
  """A randomly initialized transformers model (its own initializers, seed 0) saved as safetensors."""
  import torch
  import transformers

  torch.manual_seed(0)
  fields = {k: v for k, v in hf_config.items() if k not in ("model_type", "architectures")}
  if hf_config["model_type"] == "bert":
    model = transformers.BertModel(transformers.BertConfig(**fields))
  else:
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**fields))
  directory.mkdir(parents=True, exist_ok=True)
  model.save_pretrained(directory, safe_serialization=True)
  (directory / "tokenizer.json").write_text(tokenizer_json)


def report(ctx: suite.Context) -> dict[str, Any]:
  rows = [reporting.probe_row(ctx.results[run_name(key, n)], model=label, key=key, n_ctx=n)
          for key, (label, _, _) in models(ctx.scale).items() for n in LENGTHS[ctx.scale]]
  for row in rows:  # what a probe reaches from no information: unigram frequencies, same eval batches
    row["unigram_floor"] = reporting.probe_floor(ctx.specs[run_name(row["key"], row["n_ctx"])])
  paper = lambda r: PAPER.get((PAPER_MODEL[r["key"]], r["n_ctx"]), (None, None))
  table = reporting.markdown_table(
      ["model", "n_ctx", "CE", "I_e", "token acc.", "unigram floor acc.", "paper model", "paper CE",
       "paper acc."],
      [[r["model"], r["n_ctx"], r["cross_entropy"], r["entropy_proportion"], r["token_accuracy"],
        r["unigram_floor"]["token_accuracy"], PAPER_MODEL[r["key"]], *paper(r)] for r in rows])
  if ctx.scale != "paper":
    table += ("\n\nThe encoders are randomly initialized (transformers' initializers, converted "
              "locally), not the paper's pretrained BERT-large and Llama 3.2 1B: these rows show that "
              "the pipeline runs end to end; the paper's columns are for comparison of form only.")
  fig, axes = reporting.figure(1, width=6)
  curves = {label: [(r["n_ctx"], r["token_accuracy"]) for r in rows if r["key"] == key]
            for key, (label, _, _) in models(ctx.scale).items()}
  curves |= {f"paper: {name}": sorted((n, acc) for (m, n), (_, acc) in PAPER.items() if m == name)
             for name in PAPER_MODEL.values()}
  reporting.plot_curves(axes[0], curves, title="LLM probe token accuracy vs context length", xlabel="n_ctx",
                        ylabel="held-out token accuracy")
  axes[0].set_xscale("log", base=2)
  return {"rows": rows, "table": table, "figures": [reporting.save(fig, ctx.out / "llm_probe.png")]}


def findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
  """The paper (§5.2): retention falls steeply with context length (token accuracy at the shortest
  n_ctx 'more' than at the longest), per pretrained model; none for the random encoders of the
  smaller scales, whose embeddings say nothing about what pretraining keeps."""
  out = []
  for label in dict.fromkeys(r["model"] for r in summary["rows"] if r["model"] in PAPER_MODEL.values()):
    by_length = {r["n_ctx"]: r["token_accuracy"] for r in summary["rows"] if r["model"] == label}
    short, long = min(by_length), max(by_length)
    out.append(reporting.finding(f"{label} probe token acc.: n_ctx {short} vs {long}", by_length[short],
                                 by_length[long], "more"))
  return out


EXPERIMENT = suite.Experiment("llm_probe", "Pretrained LM information probe vs context length (paper §5.2)",
                              plan, report, findings=findings, prepare=prepare)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runtime.tune()
  with cli.user_errors("memjax.experiments.llm_probe"):
    n_ctxs = [int(n) for n in FLAGS.n_ctx]
    rows = probe(FLAGS.config, FLAGS.workdir, n_ctxs, FLAGS.tokens_per_batch)
  print(table(rows))


if __name__ == "__main__":
  define_flags()
  cli.run(main)
